"""A throwaway RabbitMQ node of our own, so a test can stop and start "the broker".

The machine's shared RabbitMQ is never restarted: this starts a second node (its own name,
AMQP port, distribution port, data and log directories, no plugins) with the installed
``rabbitmq-server``, and deletes everything it made on the way out. Messages sent to it as
persistent to durable queues survive :meth:`RabbitNode.restart`, as they would a real one.

Without a local ``rabbitmq-server`` the tests that need it skip (with the reason), except in
CI (``CI`` set), where a missing broker must fail instead of passing silently.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

USER = "rabbitmq"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RabbitNode:
    """One detached ``rabbitmq-server`` node, driven with ``rabbitmqctl -n``."""

    def __init__(self, base: Path, *, vhost: str) -> None:
        self.base, self.vhost = base, vhost
        self.name = f"qpfault{os.getpid()}@localhost"
        self.port, dist_port = free_port(), free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}"
        for sub in ("mnesia", "log"):
            (base / sub).mkdir()
        (base / "enabled_plugins").write_text("")
        # Our own config file: the machine's one pins the listener to the shared node's port.
        (base / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        self.env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "node.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),  # absent on purpose
        }
        if os.geteuid() == 0:  # the server script drops to the rabbitmq user, who must own its files
            shutil.chown(base, USER, USER)
            for path in base.rglob("*"):
                shutil.chown(path, USER, USER)

    def ctl(self, *args: str, timeout: float = 60) -> str:
        done = subprocess.run(
            ["rabbitmqctl", "-n", self.name, *args], capture_output=True, text=True, timeout=timeout, env=self.env
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {self.name} failed: {done.stderr or done.stdout}")
        return done.stdout

    def start(self, *, timeout: float = 90) -> None:
        subprocess.run(["rabbitmq-server", "-detached"], check=True, env=self.env, timeout=60, capture_output=True)
        # -detached returns before the node has even registered with epmd: poll until it answers.
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.ctl("await_startup", "--timeout", "30", timeout=40)
                return
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"node {self.name} did not start:\n{self.log_tail()}") from exc
                time.sleep(0.5)

    def stop(self) -> None:
        """Stop the node and wait until its process has exited (the pid file argument does that)."""
        self.ctl("stop", str(self.base / "node.pid"), timeout=120)

    def restart(self) -> float:
        """Stop and start the node; return how many seconds it was away."""
        began = time.monotonic()
        self.stop()
        self.start()
        return time.monotonic() - began

    def add_vhost(self) -> None:
        self.ctl("add_vhost", self.vhost)
        self.ctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")

    def log_tail(self) -> str:
        logs = sorted((self.base / "log").glob("*.log"))
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in logs)


def missing_server_reason() -> str | None:
    for tool in ("rabbitmq-server", "rabbitmqctl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed: the broker-restart test needs a local RabbitMQ installation"
    return None


@contextmanager
def throwaway_node(*, vhost: str) -> Iterator[RabbitNode]:
    """Start a node with ``vhost`` on it; stop it and delete its files afterwards."""
    reason = missing_server_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    base = Path(tempfile.mkdtemp(prefix="qpfault-"))
    node = RabbitNode(base, vhost=vhost)
    try:
        node.start()
        node.add_vhost()
        yield node
    finally:
        # It may never have started; the directory goes anyway.
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            node.stop()
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def celery_broker(url: str) -> Iterator[None]:
    """Point this process's Celery app at ``url`` (a full URL with the vhost), then back.

    Celery caches broker connections and producers in pools built from ``broker_url``, and
    kombu keeps those pools in a registry keyed by URL: both are closed and dropped both ways
    (``kombu.pools.reset``), so nothing keeps talking to the other broker and nothing reuses a
    closed pool afterwards.
    """
    from celery import current_app
    from kombu import pools

    app = current_app._get_current_object()

    def drop_pools() -> None:
        pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    old = app.conf.broker_url
    drop_pools()
    app.conf.broker_url = url
    try:
        yield
    finally:
        drop_pools()
        app.conf.broker_url = old
