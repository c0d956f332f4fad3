"""A RabbitMQ cluster of our own: two throwaway nodes on this machine, reachable from the test hosts.

Each node is a :class:`~tests.support.rabbit_node.RabbitNode` (its own node name, AMQP and
distribution ports, data, log and config directories, no plugins) whose AMQP listeners are on
loopback and on the test hosts' gateway addresses, with ``guest`` allowed off loopback (these
nodes exist for the tests alone and listen nowhere else). The second node joins the first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .hosts import skip_or_fail
from .rabbit_node import USER, RabbitNode, missing_server_reason


class ClusterNode(RabbitNode):
    def __init__(self, base: Path, *, vhost: str, name: str, listen: list[str]) -> None:
        super().__init__(base, vhost=vhost)
        self.name = name
        self.env["RABBITMQ_NODENAME"] = name
        listeners = [f"listeners.tcp.{n} = {address}:{self.port}" for n, address in enumerate(["127.0.0.1", *listen])]
        (base / "rabbitmq.conf").write_text("\n".join([*listeners, "loopback_users = none", ""]))
        if os.geteuid() == 0:
            shutil.chown(base / "rabbitmq.conf", USER, USER)

    def url_at(self, address: str) -> str:
        """This node's URL (with the vhost) as seen from a host whose gateway is ``address``."""
        return f"amqp://guest:guest@{address}:{self.port}/{self.vhost}"


@contextmanager
def throwaway_cluster(*, vhost: str, listen: list[str], nodes: int = 2) -> Iterator[list[ClusterNode]]:
    reason = missing_server_reason()
    if reason is not None:
        skip_or_fail(reason)
    made: list[tuple[ClusterNode, Path]] = []
    try:
        for n in range(nodes):
            base = Path(tempfile.mkdtemp(prefix=f"qprabbit{n}-"))
            node = ClusterNode(base, vhost=vhost, name=f"qpm{os.getpid()}n{n}@localhost", listen=listen)
            made.append((node, base))
            node.start()
        first = made[0][0]
        for node, _ in made[1:]:
            node.ctl("stop_app")
            node.ctl("reset")
            node.ctl("join_cluster", first.name)
            node.ctl("start_app")
            node.ctl("await_startup", "--timeout", "60", timeout=90)
        first.add_vhost()
        yield [node for node, _ in made]
    finally:
        for node, base in reversed(made):
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                node.stop()
            shutil.rmtree(base, ignore_errors=True)
