"""The embedded local Ray listens on loopback only: unreachable from other machines."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest
import ray
from ray._private import ray_constants

from raybench.execution.ray_backend import LOCAL_ONLY, ray_session

pytestmark = [pytest.mark.slow, pytest.mark.ray]  # every test here starts Ray


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as /proc/net/tcp{,6} writes it: 32-bit words in host (little-endian) order."""
    raw = b"".join(
        bytes.fromhex(hex_address[i : i + 8])[::-1] for i in range(0, len(hex_address), 8)
    )
    return ipaddress.ip_address(raw)


def listening_on(port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            host, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.append(_address(host))
    return found


def is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net")
def test_the_embedded_ray_binds_to_loopback_and_restores_the_setting() -> None:
    if ray.is_initialized():
        ray.shutdown()
    before = os.environ.get(LOCAL_ONLY), ray_constants.ENABLE_RAY_CLUSTER
    with ray_session(None) as local:
        assert local
        node = ray._private.worker._global_node
        assert node.node_ip_address == "127.0.0.1"
        ports = {
            "gcs": int(node.gcs_address.rsplit(":", 1)[1]),
            "raylet": node.node_manager_port,
            "runtime env agent": node.runtime_env_agent_port,
        }
        for name, port in ports.items():
            addresses = listening_on(port)
            assert addresses, f"{name} not listening on {port}"
            assert all(is_loopback(a) for a in addresses), (name, addresses)
    assert not ray.is_initialized()
    assert (os.environ.get(LOCAL_ONLY), ray_constants.ENABLE_RAY_CLUSTER) == before
