"""Test hosts: Linux network namespaces joined to this machine by veth pairs.

Each :class:`Host` is a network namespace of its own (``ip netns add``) with one veth pair: the
host end inside the namespace, the gateway end in this machine's namespace, a /30 of the
fixture's own choosing between them (``10.213.<n>.1`` here, ``10.213.<n>.2`` there). Processes
started with :meth:`Host.command` (``ip netns exec``) see only their own loopback and that link,
so they reach the broker and the database at the gateway address, never over this machine's
loopback, and cutting the link (:meth:`Host.cut`, ``ip link set … down``) partitions that host
alone. Traffic goes only to the addresses made here; nothing is routed further.

Everything is named after this process's id and removed afterwards, even when a test fails.
Without root, ``ip`` or namespace support the fixture skips with the reason, except in CI
(``CI`` set), where that must fail instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

#: The test subnet: one /30 per host inside it (pg_hba and the broker's listeners use it).
SUBNET = "10.213.0.0/16"


def ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
    return done


@dataclass
class Host:
    """One namespace: ``address`` is the host's own, ``gateway`` this machine's end of its link."""

    name: str
    index: int
    outside: str  # the veth end in this machine's namespace
    inside: str  # the veth end in the host's namespace

    @property
    def gateway(self) -> str:
        return f"10.213.{self.index}.1"

    @property
    def address(self) -> str:
        return f"10.213.{self.index}.2"

    def command(self, *args: str) -> list[str]:
        """``args`` run inside this host."""
        return ["ip", "netns", "exec", self.name, *args]

    def cut(self) -> None:
        """Take the link down at both ends: nothing gets in or out (established connections hang)."""
        ip("link", "set", self.outside, "down")
        ip("link", "set", self.inside, "down", netns=self.name)

    def restore(self) -> None:
        ip("link", "set", self.inside, "up", netns=self.name)
        ip("link", "set", self.outside, "up")
        # The default route goes with the link; put it back.
        ip("route", "replace", "default", "via", self.gateway, netns=self.name)

    def reaches(self, address: str, port: int) -> bool:
        """A TCP connection from inside this host to ``address:port`` succeeds within 2 s."""
        probe = f"import socket; socket.create_connection(({address!r}, {port}), timeout=2).close()"
        done = subprocess.run(self.command("python3", "-c", probe), capture_output=True, timeout=30)
        return done.returncode == 0


def missing_reason() -> str | None:
    """Why namespaces can't be made here, or ``None``."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    probe = f"qpprobe{os.getpid()}"
    made = ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    return None


def skip_or_fail(reason: str) -> None:
    if os.environ.get("CI") in ("true", "1", "yes"):
        pytest.fail(f"CI must run the many-machine tests: {reason}")
    pytest.skip(reason)


def _make(name: str, index: int) -> Host:
    tag = f"{os.getpid() % 100000}h{index}"  # interface names: at most 15 characters
    host = Host(name=name, index=index, outside=f"qpo{tag}", inside=f"qpi{tag}")
    ip("netns", "add", name)
    ip("link", "set", "lo", "up", netns=name)
    ip("link", "add", host.outside, "type", "veth", "peer", "name", host.inside)
    ip("link", "set", host.inside, "netns", name)
    ip("addr", "add", f"{host.gateway}/30", "dev", host.outside)
    ip("addr", "add", f"{host.address}/30", "dev", host.inside, netns=name)
    ip("link", "set", host.outside, "up")
    host.restore()
    return host


def _remove(host: Host) -> None:
    # Deleting the namespace deletes its veth end, and with it the pair; the outside end is
    # deleted as well in case the namespace is already gone. Processes still inside keep the
    # namespace alive but without its links.
    ip("netns", "del", host.name, check=False)
    ip("link", "del", host.outside, check=False)


@contextmanager
def network_hosts(count: int = 2, *, first_index: int | None = None) -> Iterator[list[Host]]:
    """``count`` hosts, each with its own namespace and link; removed afterwards, even on failure."""
    reason = missing_reason()
    if reason is not None:
        skip_or_fail(reason)
    # A second octet of our own per run, so two concurrent runs never share addresses.
    base = first_index if first_index is not None else 1 + (os.getpid() % 120) * 2
    hosts: list[Host] = []
    try:
        for n in range(count):
            hosts.append(_make(f"qp{os.getpid()}h{n}", base + n))
        yield hosts
    finally:
        for host in hosts:
            with contextlib.suppress(Exception):
                _remove(host)
