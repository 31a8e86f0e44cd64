"""Which URLs the copier may fetch: an allowlist of hosts, https, public addresses only, the resolved address pinned so a DNS answer cannot change under us."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from izgens.errors import (
    InvalidRequest,
    ProviderUnavailable,
)
from izgens.storage.keys import _HOST_RE

__all__ = ["UnsafeURL"]

MAX_REDIRECTS = 3


# Both keep InvalidRequest's `code`: the HTTP contract's codes stay as they are.
class UnsafeURL(InvalidRequest):
    title = "The URL is not allowed"


@dataclass(frozen=True, slots=True)
class _HostRule:
    """One allowlist entry.

    `.example.com`      the domain and its subdomains; https on 443; public addresses only
    `cdn.example.com`   exactly that host; https on 443; public addresses only
    `127.0.0.1:8001`    exactly that host and port; http or https; any address (the dev
                        stack's simulators live on loopback). `http://` or `https://` in
                        front pins the scheme.
    """

    host: str
    suffix: bool
    port: int | None
    schemes: frozenset[str]

    @classmethod
    def parse(cls, entry: str) -> _HostRule:
        text = entry.strip().lower()
        schemes = frozenset({"https"})
        scheme, sep, rest = text.partition("://")
        if sep:
            if scheme not in ("http", "https"):
                raise ValueError(f"allowed host {entry!r}: scheme must be http or https")
            text, schemes = rest, frozenset({scheme})
        host, port = text, None
        if text.startswith("["):  # [::1]:8001
            host, closed, tail = text[1:].partition("]")
            if not closed or (tail and not tail.startswith(":")):
                raise ValueError(f"allowed host {entry!r} is not a host name")
            port_text = tail.removeprefix(":") or None
            port = int(port_text) if port_text else None
        elif text.count(":") == 1:
            host, port_text = text.split(":")
            port = int(port_text)
        if not host.strip(".") or "/" in host or "@" in host or not host.isascii():
            raise ValueError(f"allowed host {entry!r} is not a host name")
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"allowed host {entry!r}: port out of range")
        if port is not None:
            if not sep:
                schemes = frozenset({"http", "https"})
            return cls(host, False, port, schemes)
        if schemes != {"https"}:
            raise ValueError(f"allowed host {entry!r}: plain http needs an exact host:port")
        if host.startswith("."):
            return cls(host, True, None, schemes)
        return cls(host, False, None, schemes)

    def matches(self, scheme: str, host: str, port: int) -> bool:
        if scheme not in self.schemes:
            return False
        if self.port is not None:
            return host == self.host and port == self.port
        if port != 443:
            return False
        if self.suffix:
            return host.endswith(self.host) or host == self.host[1:]
        return host == self.host

    @property
    def trusted_endpoint(self) -> bool:
        """An exact host:port entry is trusted wherever it points (loopback simulators)."""
        return self.port is not None


def _is_public_address(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            ip = embedded
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_multicast
        or ip.is_reserved
    )


@dataclass(frozen=True, slots=True)
class _Target:
    url: str
    scheme: str
    host: str
    port: int
    rule: _HostRule

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


def _vet_url(url: str, rules: list[_HostRule]) -> _Target:
    """Refuse before any connection: scheme, userinfo, allowlist, then the resolved addresses."""
    if not isinstance(url, str) or not url.isascii() or any(c.isspace() for c in url):
        raise UnsafeURL("the URL must be plain ASCII without spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL("the URL cannot be parsed") from exc
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if scheme not in ("http", "https") or not host:
        raise UnsafeURL("only http(s) URLs with a host are allowed")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeURL("URLs with credentials are not allowed")
    if "\\" in url or not _HOST_RE.fullmatch(host):
        raise UnsafeURL("the URL host is not in canonical form")
    if port is None:
        port = 443 if scheme == "https" else 80
    elif port == 0:
        raise UnsafeURL("port 0 is not a port")
    rule = next((r for r in rules if r.matches(scheme, host, port)), None)
    if rule is None:
        raise UnsafeURL(f"{scheme}://{host}:{port} is not an allowed video host")
    if not rule.trusted_endpoint:
        for address in _resolve(host, port):
            if not _is_public_address(address):
                raise UnsafeURL(f"{host} resolves to a non-public address")
    return _Target(url, scheme, host, port, rule)


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ProviderUnavailable(f"cannot resolve {host}") from exc
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise ProviderUnavailable(f"{host} has no address")
    return addresses


def _origin_of(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port if parts.port is not None else (443 if scheme == "https" else 80)
        return (scheme, parts.hostname or "", port)
    except ValueError:
        return None


def _same_parse(parsed: Any, target: _Target) -> None:
    """httpx must read the URL exactly as we vetted it (no parser differential)."""
    port = parsed.port if parsed.port is not None else (443 if parsed.scheme == "https" else 80)
    if (parsed.scheme, parsed.host, port) != target.origin:
        raise UnsafeURL("the URL is ambiguous")


def _check_peer(response: Any, target: _Target) -> None:
    """Re-check the address actually connected to (a DNS answer can change after vetting)."""
    if target.rule.trusted_endpoint:
        return
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if peer and not _is_public_address(str(peer[0])):
        raise UnsafeURL(f"{target.host} connected to a non-public address")
