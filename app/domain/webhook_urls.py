"""Where a webhook may send: the URL rules, and the addresses no attempt may reach.

An address is blocked when it is loopback, private, link-local, carrier-grade NAT (100.64/10),
multicast, reserved or unspecified, in IPv4, IPv6 or IPv4-mapped IPv6: anything that is not a
global unicast address. The rule is checked when a webhook is made or changed (every address
its host resolves to) and again on the address each attempt connects to (app/webhooks/).
See docs/webhooks.md.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from app.domain.errors import FieldError, invalid_input

MAX_URL_LENGTH = 2048
RESOLVE_SECONDS = 5.0
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
CGNAT = ipaddress.ip_network("100.64.0.0/10")


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """WEBHOOKS_ALLOW_HTTP (http:// for development) and WEBHOOKS_ALLOW_PRIVATE (any address)."""

    allow_http: bool = False
    allow_private: bool = False


def blocked(address: IPAddress) -> bool:
    """Whether no attempt may connect to this address (see the module doc)."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return blocked(mapped)
        if address.teredo is not None:
            return True
    if isinstance(address, ipaddress.IPv4Address) and address in CGNAT:
        return True
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (a literal address is itself)."""
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(
        loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_SECONDS
    )
    found: list[IPAddress] = []
    for info in infos:
        address = literal_address(str(info[4][0]))
        if address is not None and address not in found:
            found.append(address)
    return found


def _refused(message: str) -> Exception:
    return invalid_input([FieldError(("url",), message)])


def _split(url: str, policy: UrlPolicy) -> SplitResult:
    if len(url) > MAX_URL_LENGTH:
        raise _refused(f"must be at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refused("must be an absolute https:// URL") from None
    schemes = ("https", "http") if policy.allow_http else ("https",)
    if parts.scheme not in schemes:
        raise _refused("must be an https:// URL")
    if not parts.hostname or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise _refused("must be an absolute https:// URL with a host")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise _refused("may not hold a user name or password")
    if port == 0:
        raise _refused("must have a valid port")
    return parts


async def check_url(url: str, policy: UrlPolicy) -> str:
    """The URL when it may receive webhooks; VALIDATION_FAILED naming `url` otherwise. A host
    that does not resolve (yet) is accepted: its attempts fail until it does."""
    parts = _split(url, policy)
    if policy.allow_private:
        return url
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = await resolve(host, port)
    except (OSError, TimeoutError, UnicodeError):
        addresses = []
    refused = [str(a) for a in addresses if blocked(a)]
    if refused or host.lower().rstrip(".") in ("localhost", "localhost.localdomain"):
        shown = ", ".join(refused) or host
        raise _refused(
            f"may not point to a loopback, private, link-local, shared or reserved address "
            f"({shown})"
        )
    return url
