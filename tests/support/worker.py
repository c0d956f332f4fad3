"""Real Celery worker subprocesses for behaviour tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .polling import wait_for

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    def __init__(self, proc: subprocess.Popen[bytes], log: Path, name: str) -> None:
        self.proc, self.log, self.name = proc, log, name

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def is_ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"worker {self.name} exited early:\n{self.output()[-4000:]}")
        # "ready." can come late when the queue is busy; "Connected to" means it is consuming.
        output = self.output()
        return " ready." in output or "Connected to amqp" in output

    def answers_ping(self) -> bool:
        """The worker's control consumer is up: it answers a broadcast ping.

        "Connected to amqp" comes before the control (pidbox) consumer starts, so a test
        that needs the worker to answer remote control waits for this as well."""
        from celery import current_app

        replies = current_app.control.ping(timeout=1.0) or []
        prefix = self.name.split("@")[0] + "@"
        return any(name.startswith(prefix) for reply in replies for name in reply)

    def stop(self, *, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL the whole process group: the main process and its pool children."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def worker_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings"),
        QUEUEPRIO_TEST_WORKER="1",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@contextmanager
def running_worker(
    log_dir: Path,
    *,
    concurrency: int = 1,
    queues: str | None = None,
    env: dict[str, str] | None = None,
    pool: str = "prefork",
    app: str = "project",
) -> Iterator[Worker]:
    """Start ``celery worker`` and wait until it is consuming; stop it afterwards."""
    name = f"w{uuid.uuid4().hex[:8]}@%h"
    log = log_dir / f"{name.split('@')[0]}.log"
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app,
        "worker",
        "-n",
        name,
        "-c",
        str(concurrency),
        "-P",
        pool,
        "-l",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    if queues:
        args += ["-Q", queues]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            args, cwd=ROOT, env=worker_env(**(env or {})), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    worker = Worker(proc, log, name)
    try:
        wait_for(worker.is_ready, timeout=60, message=f"worker {name} to be ready")
        yield worker
    finally:
        worker.stop()
