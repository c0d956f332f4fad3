"""The demo's processes: what each runs (secrets only in the environment), whether it came up, its log."""

from __future__ import annotations

import base64
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

#: Seconds each process gets to come up before the demo says it failed.
START_TIMEOUT = 90.0


@dataclass
class Process:
    """One process of the demo, its log file, and how to tell it is up."""

    name: str
    command: list[str]
    log: Path
    #: True once the process serves (answers a ping, an HTTP request, logs its start).
    is_up: Callable[[Process], bool] = field(repr=False, default=lambda process: True)
    proc: subprocess.Popen[bytes] | None = None
    _out: IO[bytes] | None = field(default=None, repr=False)

    def start(self, env: dict[str, str], cwd: Path) -> None:
        self._out = open(self.log, "wb")  # noqa: SIM115  (closed in stop())
        self.proc = subprocess.Popen(self.command, stdout=self._out, stderr=subprocess.STDOUT, cwd=cwd, env=env)

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def tail(self, lines: int = 3) -> list[str]:
        return [line for line in self.output().splitlines() if line.strip()][-lines:]

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._out is not None:
            self._out.close()


@dataclass(frozen=True)
class Failure:
    """A process that exited or didn't come up in time: what to tell the user."""

    name: str
    log: Path
    reason: str
    last_lines: list[str]

    def lines(self) -> list[str]:
        return [f"{self.name} failed: {self.reason}; its log: {self.log}", *(f"    {line}" for line in self.last_lines)]


def wait_until_up(processes: list[Process], *, timeout: float = START_TIMEOUT, interval: float = 0.5) -> list[Failure]:
    """Wait for every process to be up; the ones that exited or timed out (empty: all up)."""
    deadline = time.monotonic() + timeout
    pending = list(processes)
    failures: list[Failure] = []
    while pending:
        for process in list(pending):
            code = process.exit_code()
            if code is not None:
                failures.append(Failure(process.name, process.log, f"it exited with status {code}", process.tail()))
                pending.remove(process)
            elif process.is_up(process):
                pending.remove(process)
        if not pending:
            break
        if time.monotonic() > deadline:
            failures += [
                Failure(p.name, p.log, f"not up after {timeout:.0f} s", p.tail())
                for p in pending
                if p.exit_code() is None
            ]
            break
        time.sleep(interval)
    return failures


def http_ok(url: str, *, user: str = "", password: str = "") -> bool:
    """``url`` answers with a 2xx (basic auth if given); any error or refusal is ``False``."""
    headers = {}
    if user:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(url, headers=headers)  # noqa: S310  (the demo's own loopback URLs)
    try:
        with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310
            return 200 <= int(response.status) < 300
    except (OSError, urllib.error.URLError, ValueError):
        return False


def taken(ports: dict[str, int], host: str = "127.0.0.1") -> list[str]:
    """What to tell the user about each of ``ports`` (by the name of its process) that another program holds.

    Asked before the processes start: once they run, an answer on the port can't tell the demo's
    own server from another one (another dev server answers 200 too, and the demo would print
    URLs to it).
    """
    messages = []
    for name, port in ports.items():
        with socket.socket() as probe:
            # SO_REUSEADDR: a port a stopped demo left in TIME_WAIT is free to take again.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as error:
                messages.append(f"{name}: port {port} on {host} is taken by another program ({error.strerror})")
    return messages


def logged(text: str) -> Callable[[Process], bool]:
    """Up once ``text`` is in the process's log."""
    return lambda process: text in process.output()
