"""SSRF guard: which addresses a media download may connect to, enforced when the socket is opened.

A URL's host is resolved once, every resolved address is checked, and the connection is made to a
checked address (never re-resolved, so DNS rebinding cannot slip a private address in between).
The check lives in an httpcore network backend, so it runs for every connection the HTTP client
opens: the first request and every redirect alike.

Refused by default: loopback, private (RFC 1918, ULA), link-local, shared (CGNAT), multicast,
reserved and unspecified addresses, IPv4 embedded in IPv6 (mapped, 6to4, NAT64) when the embedded
address is refused, Teredo. An allowlist opens hosts (`example.com`, `*.example.com`: any address
they resolve to) and networks (`10.1.0.0/16`, `127.0.0.1`). Cloud metadata addresses stay refused
whatever the allowlist says.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import time
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import httpcore

from queues.errors import ClientError
from queues.media.errors import bad_request, upstream

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

_METADATA_NETWORKS: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.169.254/32",  # AWS, GCP, Azure, DigitalOcean, OpenStack
        "169.254.170.2/32",  # AWS ECS task metadata
        "100.100.100.200/32",  # Alibaba Cloud
        "192.0.0.192/32",  # Oracle Cloud
        "fd00:ec2::254/128",  # AWS IPv6
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IETF_PROTOCOL = ipaddress.ip_network("192.0.0.0/24")  # not global, though Python 3.11 says otherwise
_LOOPBACK = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
_LEGACY_IPV4 = re.compile(r"^[0-9a-fA-FxX.]+$")
_HOST_LABELS = re.compile(r"^(\*\.)?([a-z0-9_-]+\.)*[a-z0-9_-]+\.?$")


def literal_ip(host: str) -> IPAddress | None:
    """The address a host string denotes literally, legacy IPv4 forms (`127.1`, `0x7f000001`) included."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if _LEGACY_IPV4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def is_public(ip: IPAddress) -> bool:
    """True if `ip` is a globally routable unicast address (embedded IPv4 judged by itself)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
        if ip.teredo is not None:
            return False
    if ip.version == 4 and ip in _IETF_PROTOCOL:
        return False
    return ip.is_global and not ip.is_multicast


def is_metadata(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in _METADATA_NETWORKS)


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class HostPolicy:
    """The allowlist and the decision for one host or address."""

    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> HostPolicy:
        names: set[str] = set()
        suffixes: list[str] = []
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().lower()
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if not _HOST_LABELS.match(entry):
                raise ValueError(f"allowlist entry is neither a host name nor an IP network: {raw!r}")
            if entry.startswith("*."):
                suffixes.append(entry[1:].rstrip("."))
            else:
                names.add(entry.rstrip("."))
        return cls(frozenset(names), tuple(suffixes), tuple(networks))

    def host_allowed(self, host: str) -> bool:
        """True if the host name itself is allowlisted (then any address it resolves to is accepted)."""
        host = host.lower().rstrip(".")
        return host in self.names or any(host.endswith(suffix) for suffix in self.suffixes)

    def address_allowed(self, ip: IPAddress, *, host_allowed: bool = False) -> bool:
        if is_metadata(ip):
            return False
        if host_allowed or is_public(ip):
            return True
        return any(ip.version == net.version and ip in net for net in self.networks)

    def check_host(self, host: str) -> None:
        """The synchronous part of the guard: refuse a literal address or an obviously local name.

        Host names are checked for real only after resolution (`resolve`)."""
        name = host.lower().rstrip(".")
        ip = literal_ip(name)
        if ip is not None:
            if not self.address_allowed(ip):
                raise _forbidden(host)
        elif (name == "localhost" or name.endswith(".localhost")) and not (
            self.host_allowed(name) or any(self.address_allowed(ip) for ip in _LOOPBACK)
        ):
            raise _forbidden(host)

    async def resolve(self, host: str, port: int, resolver: Resolver = system_resolver) -> list[str]:
        """The addresses of `host` that may be connected to, in resolver order; ClientError if none."""
        self.check_host(host)
        ip = literal_ip(host)
        if ip is not None:
            return [str(ip)]
        try:
            found = await resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise upstream("dns_error", f"could not resolve host {host!r}") from exc
        named = self.host_allowed(host)
        allowed: list[str] = []
        for address in found:
            parsed = literal_ip(address)
            if (
                parsed is not None
                and self.address_allowed(parsed, host_allowed=named)
                and str(parsed) not in allowed
            ):
                allowed.append(str(parsed))
        if not allowed:
            raise _forbidden(host) if found else upstream("dns_error", f"could not resolve host {host!r}")
        return allowed


def _forbidden(host: str) -> ClientError:
    return bad_request(
        "forbidden_address",
        f"the media URL host {host!r} refers to a private, local or reserved address; it is not fetched",
    )


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves, checks and then connects to a checked address.

    TLS still verifies the certificate against the URL's host name (httpcore passes it as SNI)."""

    def __init__(
        self,
        policy: HostPolicy,
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._resolver = resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        start = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._policy.resolve(host, port, self._resolver)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from exc
        options = list(socket_options or ())
        error: Exception = httpcore.ConnectError(f"no address of {host!r} accepted a connection")
        for address in addresses:
            remaining = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
            try:
                return await self._inner.connect_tcp(address, port, remaining, local_address, options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not used for media downloads")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
