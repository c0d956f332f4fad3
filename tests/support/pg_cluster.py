"""A throwaway PostgreSQL cluster of our own, listening where the test hosts can reach it.

The machine's PostgreSQL listens on loopback only and is shared; this one is ``initdb``'d into a
temporary directory (owned by the ``postgres`` user, as initdb refuses to run as root), on its own
port, listening on the addresses given (the test hosts' gateway addresses), with trust
authentication for the test subnet and loopback only. :meth:`PgCluster.restart` stops it (fast
shutdown: sessions are cut) and starts it again, keeping its data. Everything is deleted afterwards.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .hosts import SUBNET, skip_or_fail

USER = "postgres"


def bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgCluster:
    def __init__(self, base: Path, bindir: Path, listen: list[str]) -> None:
        self.base, self.bindir, self.listen = base, bindir, listen
        self.data, self.port = base / "data", free_port()
        self.log = base / "server.log"

    def _run(self, *args: str, timeout: float = 120) -> str:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        as_user = os.geteuid() == 0
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            user=USER if as_user else None,
            cwd=self.base,
            env={**os.environ, "LC_ALL": "C.UTF-8"},
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr or done.stdout}\n{self.log_tail()}")
        return done.stdout

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        addresses = ",".join(["127.0.0.1", *self.listen])
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nlisten_addresses = '{addresses}'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.base}'\n"
                "max_connections = 100\nshared_buffers = 32MB\nfsync = off\nsynchronous_commit = off\n"
                "full_page_writes = off\n"
            )
        (self.data / "pg_hba.conf").write_text(
            f"local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all {SUBNET} trust\n"
        )

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def running(self) -> bool:
        done = subprocess.run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "status"], capture_output=True)
        return done.returncode == 0

    def restart(self, *, away: float = 0.0) -> float:
        """Stop, stay away ``away`` seconds, start; return how long it was away."""
        began = time.monotonic()
        self.stop()
        if away:
            time.sleep(away)  # an outage of a given length, not a wait for a condition
        self.start()
        return time.monotonic() - began

    def url(self, host: str, name: str) -> str:
        return f"postgres://postgres@{host}:{self.port}/{name}"

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@contextmanager
def throwaway_cluster(listen: list[str]) -> Iterator[PgCluster]:
    bindir = bin_dir()
    if bindir is None:
        skip_or_fail("PostgreSQL's initdb is not installed")
        raise AssertionError  # unreachable
    base = Path(tempfile.mkdtemp(prefix="qppg-"))
    if os.geteuid() == 0:
        os.chown(base, pwd.getpwnam(USER).pw_uid, pwd.getpwnam(USER).pw_gid)
    cluster = PgCluster(base, bindir, listen)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        if cluster.running():
            with contextlib.suppress(Exception):
                cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
