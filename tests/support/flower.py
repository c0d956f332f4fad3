"""A real Flower subprocess on a free loopback port, with basic auth, for monitoring tests."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .polling import wait_for
from .worker import ROOT, worker_env

USER, PASSWORD = "flower-test", "flower-test-password"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Flower:
    proc: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def get(self, path: str, **params: str) -> tuple[int, Any]:
        """GET ``path`` with basic auth; returns the status and the decoded JSON (or text)."""
        url = f"{self.base_url}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310  (loopback)
                body = response.read().decode()
                status = response.status
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body

    def is_up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"flower exited early:\n{self.log.read_text(errors='replace')[-4000:]}")
        try:
            return self.get("/healthcheck")[0] == 200
        except OSError:
            return False


@contextmanager
def running_flower(log_dir: Path, **env_options: str) -> Iterator[Flower]:
    """Start ``celery flower`` (basic auth from the environment, like in production); stop it afterwards.

    ``env_options`` are further ``FLOWER_<OPTION>`` variables.
    """
    port = free_port()
    log = log_dir / "flower.log"
    env = worker_env(FLOWER_BASIC_AUTH=f"{USER}:{PASSWORD}", **env_options)
    args = [sys.executable, "-m", "celery", "-A", "project", "flower", f"--port={port}", "--address=127.0.0.1"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    flower = Flower(proc, f"http://127.0.0.1:{port}", log)
    try:
        wait_for(flower.is_up, timeout=60, interval=0.2, message="flower to answer")
        yield flower
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
