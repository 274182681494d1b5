"""The SSRF guard: address classification, the allowlist, resolution, and the connect-time backend."""

from __future__ import annotations

import ipaddress
import typing

import httpcore
import pytest

from queues.errors import ClientError
from queues.media.ssrf import GuardedNetworkBackend, HostPolicy, is_public, literal_ip

REFUSED = [
    "127.0.0.1",
    "127.255.0.9",
    "0.0.0.0",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "169.254.1.1",
    "100.64.0.1",
    "100.100.100.200",
    "192.0.0.192",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "ff02::1",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", REFUSED)
def test_refused_addresses(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("fe80::1%eth0", "fe80::1"),
        ("example.com", None),
        ("cafe.be", None),
    ],
)
def test_literal_ip(host: str, expected: str | None) -> None:
    found = literal_ip(host)
    assert (str(found) if found else None) == expected


def test_allowlist_parsing_and_matching() -> None:
    policy = HostPolicy.parse(["10.1.0.0/16", "127.0.0.1", "Media.Example.com.", "*.cdn.test", "[::1]"])
    assert policy.address_allowed(ipaddress.ip_address("10.1.2.3"))
    assert not policy.address_allowed(ipaddress.ip_address("10.2.0.1"))
    assert policy.address_allowed(ipaddress.ip_address("::1"))
    assert policy.host_allowed("media.example.com")
    assert policy.host_allowed("a.b.cdn.test")
    assert not policy.host_allowed("cdn.test.evil.com")
    with pytest.raises(ValueError):
        HostPolicy.parse(["not a host!"])


def test_metadata_addresses_stay_refused_whatever_the_allowlist() -> None:
    policy = HostPolicy.parse(["0.0.0.0/0", "::/0", "metadata.google.internal"])
    assert policy.address_allowed(ipaddress.ip_address("10.0.0.1"))
    for address in ("169.254.169.254", "::ffff:169.254.169.254", "fd00:ec2::254"):
        assert not policy.address_allowed(ipaddress.ip_address(address))
        assert not policy.address_allowed(ipaddress.ip_address(address), host_allowed=True)


@pytest.mark.parametrize(
    "host", ["10.0.0.1", "[::1]", "localhost", "a.localhost", "127.1", "169.254.169.254"]
)
def test_check_host_refuses_literal_and_local_names(host: str) -> None:
    with pytest.raises(ClientError) as caught:
        HostPolicy().check_host(host)
    assert (caught.value.status, caught.value.code) == (400, "forbidden_address")


def test_check_host_lets_names_through_for_resolution() -> None:
    HostPolicy().check_host("example.com")
    HostPolicy.parse(["127.0.0.0/8", "::1"]).check_host("localhost")


def fake_dns(table: dict[str, list[str]]) -> typing.Callable[[str, int], typing.Awaitable[list[str]]]:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("no such host")
        return table[host]

    return resolve


DNS = fake_dns(
    {
        "public.test": ["93.184.216.34"],
        "private.test": ["10.0.0.7"],
        "mixed.test": ["10.0.0.7", "93.184.216.34", "93.184.216.34"],
        "meta.test": ["169.254.169.254"],
    }
)


async def test_resolve_checks_every_address_after_resolution() -> None:
    policy = HostPolicy()
    assert await policy.resolve("public.test", 80, DNS) == ["93.184.216.34"]
    assert await policy.resolve("mixed.test", 80, DNS) == ["93.184.216.34"]  # only checked addresses kept
    with pytest.raises(ClientError) as caught:
        await policy.resolve("private.test", 80, DNS)
    assert caught.value.status == 400
    with pytest.raises(ClientError) as caught:
        await policy.resolve("unknown.test", 80, DNS)
    assert (caught.value.status, caught.value.code) == (400, "dns_error")


async def test_allowlisted_name_accepts_its_private_addresses_but_not_metadata() -> None:
    policy = HostPolicy.parse(["private.test", "meta.test"])
    assert await policy.resolve("private.test", 80, DNS) == ["10.0.0.7"]
    with pytest.raises(ClientError):
        await policy.resolve("meta.test", 80, DNS)


class RecordingBackend(httpcore.AsyncMockBackend):
    def __init__(self) -> None:
        super().__init__([])
        self.connected: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connected.append(host)
        if host == "93.184.216.34":
            raise httpcore.ConnectError("refused")
        return await super().connect_tcp(host, port, timeout, local_address, socket_options)


async def test_backend_connects_to_the_checked_address_not_the_name() -> None:
    inner = RecordingBackend()
    backend = GuardedNetworkBackend(
        HostPolicy.parse(["10.0.0.0/8"]), fake_dns({"two.test": ["93.184.216.34", "10.0.0.9"]}), inner
    )
    await backend.connect_tcp("two.test", 80, timeout=1.0)
    assert inner.connected == ["93.184.216.34", "10.0.0.9"]  # first refused the connection, second accepted


async def test_backend_refuses_before_connecting() -> None:
    inner = RecordingBackend()
    backend = GuardedNetworkBackend(HostPolicy(), DNS, inner)
    with pytest.raises(ClientError):
        await backend.connect_tcp("private.test", 80, timeout=1.0)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_unix_socket("/var/run/docker.sock")
    assert inner.connected == []
