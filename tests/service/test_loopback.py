"""engine.service.loopback: the control API's HTTP client, against a real socket server on 127.0.0.1.

The server answers each connection with canned bytes, written in small pieces so
that lines and chunks arrive split, as they can on a real connection.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import suppress

import pytest

from engine.service import loopback


class CannedServer:
    """Accepts connections; records each request's head and answers with `answer`."""

    def __init__(self, answer: bytes, piece: int = 7) -> None:
        self.answer = answer
        self.piece = piece
        self.requests: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                received = b""
                while b"\r\n\r\n" not in received:
                    received += conn.recv(4096)
                head, _, body = received.partition(b"\r\n\r\n")
                length = [
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ]
                while length and len(body) < length[0]:
                    body += conn.recv(4096)
                self.requests.append(head + b"\r\n\r\n" + body)
                with suppress(OSError):  # a client that found an error hangs up early
                    for start in range(0, len(self.answer), self.piece):
                        conn.sendall(self.answer[start : start + self.piece])
                        time.sleep(0.0005)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[list[CannedServer]]:
    servers: list[CannedServer] = []
    yield servers
    for server in servers:
        server.close()


def _start(servers: list[CannedServer], answer: bytes, piece: int = 7) -> CannedServer:
    server = CannedServer(answer, piece)
    servers.append(server)
    return server


def test_a_content_length_answer_and_the_request_sent(serve: list[CannedServer]) -> None:
    server = _start(
        serve,
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 11\r\n"
        b'\r\n{"ok": true}',
    )
    with loopback.request(
        "127.0.0.1",
        server.port,
        "POST",
        "/control/x",
        b'{"a": 1}',
        {"Authorization": "Bearer t"},
        5,
    ) as response:
        assert response.status == 201
        assert response.headers["content-type"] == "application/json"
        assert response.read() == b'{"ok": true'  # exactly Content-Length bytes
    sent = server.requests[0]
    assert sent.startswith(b"POST /control/x HTTP/1.1\r\n")
    assert b"\r\nConnection: close\r\n" in sent
    assert b"\r\nAuthorization: Bearer t\r\n" in sent
    assert b"\r\nContent-Length: 8\r\n" in sent
    assert sent.endswith(b'\r\n\r\n{"a": 1}')


def test_a_chunked_stream_is_read_line_by_line_across_chunks(serve: list[CannedServer]) -> None:
    events = b': events\n\ndata: {"n": 1}\n\ndata: {"n": 2}\n\n'
    chunks = [events[:5], events[5:23], events[23:24], events[24:]]
    body = (
        b"".join(b"%x;ext=1\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\nX-Trailer: 1\r\n\r\n"
    )
    server = _start(serve, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body, piece=3)
    with loopback.request("127.0.0.1", server.port, "GET", "/e", None, {}, 5) as response:
        lines = list(response)
    assert b"".join(lines) == events
    assert lines[:3] == [b": events\n", b"\n", b'data: {"n": 1}\n']
    assert b"Content-Length" not in server.requests[0]


def test_an_answer_without_a_length_is_read_to_the_close(serve: list[CannedServer]) -> None:
    server = _start(serve, b"HTTP/1.0 404 Not Found\r\n\r\n" + b"x" * 70000, piece=4096)
    with loopback.request("127.0.0.1", server.port, "GET", "/", None, {}, 5) as response:
        assert response.status == 404
        assert response.read() == b"x" * 70000


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\ntoo short",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nhalf",
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"",
        b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n0123456789",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
    ],
    ids=["short-body", "cut-chunk", "not-http", "closed", "bad-length", "bad-chunk-size"],
)
def test_a_broken_answer_is_a_protocol_error(serve: list[CannedServer], answer: bytes) -> None:
    server = _start(serve, answer)
    with pytest.raises(loopback.ProtocolError):
        with loopback.request("127.0.0.1", server.port, "GET", "/", None, {}, 5) as response:
            response.read()


def test_nothing_listening_is_connection_refused() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(ConnectionRefusedError):
        loopback.request("127.0.0.1", port, "GET", "/", None, {}, 5)
