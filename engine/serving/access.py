"""Who may reach the endpoint: loopback Host names, browser origins, the bearer token.

Bound to loopback (the default), a request is refused when its Host header is
not a loopback name (421: a DNS-rebinding page names its own host) or when a
POST carries an Origin that is not loopback (403: a browser sends Origin with
every POST). Bound beyond loopback, inference and /metrics also need the
project's bearer token unless `[serving] auth = "none"`; the health checks
stay open. The control API always checks the token itself.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable

Header = Callable[[str], "str | None"]

OPEN_PATHS = frozenset(("/ping", "/health", "/v2/health/live", "/v2/health/ready"))
"""Health checks: answered without the token (they tell nothing about the model)."""

KNOWN_HOSTS = 64
"""Host values already found to be loopback, remembered to skip parsing them again."""


def is_loopback_address(host: str) -> bool:
    """Whether a bind address (or name) is a loopback one."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_is_loopback(value: str) -> bool:
    """Whether a Host header (`name[:port]`, `[v6][:port]`) names this machine's loopback."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (value[end + 1 :] and not value[end + 1 :].startswith(":")):
            return False
        name = value[1:end]
    elif value.count(":") == 1:
        name, port = value.split(":")
        if not port.isdigit():
            return False
    elif ":" in value and not is_loopback_address(value):
        name = value.rsplit(":", 1)[0]  # an unbracketed IPv6 with a port (loose clients)
    else:
        name = value
    return bool(name) and is_loopback_address(name.rstrip("."))


def origin_is_loopback(origin: str) -> bool:
    """Whether a browser's Origin (`scheme://host[:port]`) is a page served from loopback."""
    scheme, sep, rest = origin.partition("://")
    return bool(sep) and scheme in ("http", "https") and host_is_loopback(rest)


class Access:
    """The checks a request passes before any route sees it."""

    def __init__(self, loopback_only: bool = True, token: str | None = None) -> None:
        self.loopback_only = loopback_only
        """Bound to loopback: refuse foreign Host names and foreign browser origins."""
        self.token = token
        """When set: inference and /metrics need `Authorization: Bearer <token>`."""
        self._expected = None if token is None else f"Bearer {token}".encode()
        self._known_hosts: set[str] = set()

    def refusal(self, method: str, path: str, header: Header) -> tuple[int, str] | None:
        """(status, message) when the request must be refused; None when it may go on."""
        if self.loopback_only:
            host = header("host")
            if host is not None and host not in self._known_hosts:
                if not host_is_loopback(host):
                    return 421, (
                        f"Host {host[:100]!r} is not a loopback name; this server is bound to "
                        "loopback and answers only localhost, 127.0.0.1 or [::1]"
                    )
                if len(self._known_hosts) < KNOWN_HOSTS:
                    self._known_hosts.add(host)
            if method != "GET":
                origin = header("origin")
                if origin is not None and not origin_is_loopback(origin):
                    return 403, f"requests from web pages ({origin[:100]!r}) are refused"
        if self._expected is not None and path not in OPEN_PATHS:
            if path.startswith("/control/"):
                return None  # the control API checks the token itself
            given = (header("authorization") or "").encode("latin-1", "replace")
            if not hmac.compare_digest(given, self._expected):
                return 401, (
                    "this server is exposed beyond loopback: send the project's token "
                    "(.mldeck/token) as 'Authorization: Bearer <token>'"
                )
        return None
