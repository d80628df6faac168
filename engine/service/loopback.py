"""HTTP/1.1 to the engine's control API on this machine: one request per connection.

Not http.client: it imports email and ssl, ~45 ms of a command that asks a running
engine (`mldeck explain` through the daemon is ~200 ms in all). The control API is
our own server on loopback, so this needs no TLS, proxies, redirects or keep-alive:
it sends one request with `Connection: close` and reads the answer by its
Content-Length, chunk by chunk, or to the end of the connection.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator

MAX_LINE = 65536
"""Longest status, header or chunk-size line accepted."""


class ProtocolError(OSError):
    """The server's answer is not HTTP/1.x as this client reads it."""


def _number(text: str, base: int) -> int:
    """A Content-Length (base 10) or chunk size (base 16)."""
    try:
        value = int(text.strip(), base)
    except ValueError:
        value = -1
    if value < 0:
        raise ProtocolError(f"not a byte count: {text.strip()!r}")
    return value


class Response:
    """A status, lower-cased headers and a body read on demand (`read`, or line by line)."""

    def __init__(self, sock: socket.socket, stream: io.BufferedReader) -> None:
        self._sock = sock
        self._stream = stream
        parts = self._line().split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP/1.x status line: {parts!r}")
        self.status = int(parts[1])
        self.headers: dict[str, str] = {}
        while line := self._line().rstrip(b"\r\n"):
            name, _, value = line.decode("latin-1").partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        length = self.headers.get("content-length")
        self._left = None if length is None or self._chunked else _number(length, 10)

    def _line(self) -> bytes:
        line = self._stream.readline(MAX_LINE + 1)
        if not line:
            raise ProtocolError("the connection closed in the middle of an answer")
        if len(line) > MAX_LINE:
            raise ProtocolError(f"a line over {MAX_LINE} bytes")
        return line

    def _exactly(self, size: int) -> bytes:
        data = self._stream.read(size)
        if len(data) < size:
            raise ProtocolError(f"the body ended after {len(data)} of {size} bytes")
        return data

    def _pieces(self) -> Iterator[bytes]:
        """The body as it arrives."""
        if self._chunked:
            while size := _number(self._line().split(b";", 1)[0].decode("latin-1"), 16):
                yield self._exactly(size)
                self._line()  # the CRLF after a chunk
            while self._line().strip():  # trailers, up to the blank line
                pass
        elif self._left is not None:
            yield self._exactly(self._left)
        else:
            while data := self._stream.read1(65536):
                yield data

    def read(self) -> bytes:
        return b"".join(self._pieces())

    def __iter__(self) -> Iterator[bytes]:
        """The body line by line, each with its newline (the last may have none)."""
        pending = b""
        for piece in self._pieces():
            pending += piece
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line + b"\n"
        if pending:
            yield pending

    def close(self) -> None:
        self._stream.close()
        self._sock.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def request(
    host: str,
    port: int,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    timeout: float | None,
) -> Response:
    """Send one request and read the status and headers of its answer.

    Raises:
        OSError: the connection failed or broke (ConnectionRefusedError when nothing
            listens); ProtocolError when the answer is not HTTP.
    """
    sock = socket.create_connection((host, port), timeout)
    try:
        head = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None:
            head.append(f"Content-Length: {len(body)}")
        sock.sendall("\r\n".join(head).encode("latin-1") + b"\r\n\r\n" + (body or b""))
        stream = sock.makefile("rb")
    except BaseException:
        sock.close()
        raise
    try:
        return Response(sock, stream)
    except BaseException:
        stream.close()
        sock.close()
        raise
