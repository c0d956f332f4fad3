"""One run at a time: RabbitMQ redelivers an unacked message when the worker's *connection* drops,
not only when its process dies. The redelivered copy must not start a second run while the first
is alive, and that is not a worker loss. The lease is what holds it: the control shortens the lease
below the job's length and the second run happens."""

from __future__ import annotations

import subprocess
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import pytest
from kombu import Connection

from queueprio.models import Job, JobState
from tests.conftest import rabbitmqctl
from tests.support.ledger import finished
from tests.support.polling import lines, wait_for
from tests.support.semantics_tasks import slow
from tests.support.worker import Worker, running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def connections_of(worker: Worker, vhost: str) -> list[str]:
    """RabbitMQ's pids of the AMQP connections the worker's processes opened (matched by local port)."""
    group = {
        int(pid)
        for pid in subprocess.run(["pgrep", "-g", str(worker.proc.pid)], capture_output=True, text=True).stdout.split()
    }
    sockets = subprocess.run(
        ["ss", "-tnpH", "state", "established", "( dport = :5672 )"], capture_output=True, text=True
    ).stdout
    ports = {
        line.split()[2].rsplit(":", 1)[1]
        for line in sockets.splitlines()
        if any(f"pid={pid}," in line for pid in group)
    }
    listed = subprocess.run(
        ["rabbitmqctl", "list_connections", "-p", vhost, "pid", "name", "--no-table-headers", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    return [line.split("\t")[0] for line in listed if any(f":{port} ->" in line for port in ports)]


def drop_connections(worker: Worker, vhost: str) -> int:
    pids = connections_of(worker, vhost)
    for pid in pids:
        rabbitmqctl("close_connection", pid, "queueprio test: connection dropped")
    return len(pids)


def run_with_a_dropped_connection(tmp_path: Path, vhost: str, out: str, env: dict[str, str]) -> Counter[str]:
    job = slow.apply_async(("job", out, 6.0), priority=5)
    with ExitStack() as stack:
        first = stack.enter_context(running_worker(tmp_path, env=env))
        wait_for(lambda: "start job" in lines(out), timeout=60, message="the first run to start")
        stack.enter_context(running_worker(tmp_path, env=env))  # takes the redelivered copy
        wait_for(lambda: connections_of(first, vhost), timeout=30, message="the first worker's connections")
        assert drop_connections(first, vhost) >= 1
        wait_for(lambda: finished(job.id), timeout=60, message="the job to finish")
        wait_for(lambda: lines(out).count("done job") >= 1, timeout=30)
    return Counter(line.split()[0] for line in lines(out))


def test_connection_dropped_mid_run__no_second_run_and_no_worker_loss(
    tmp_path: Path, broker: Connection, broker_vhost: str, out: str
) -> None:
    runs = run_with_a_dropped_connection(tmp_path, broker_vhost, out, {"QUEUEPRIO_LEASE_SECONDS": "15"})
    assert runs == {"start": 1, "done": 1}
    job = Job.objects.get()
    assert (job.state, job.worker_losses) == (JobState.SUCCEEDED, 0)


def test_control__a_lease_shorter_than_the_run__the_redelivered_copy_runs_it_again(
    tmp_path: Path, broker: Connection, broker_vhost: str, out: str
) -> None:
    # Lease 0.3 s, renewed every 0.1 s... but a renewal can't make it "current" for the claim once
    # its time is nearly past: with a lease this short the second copy takes over, as it would with
    # no lease at all. (The run then stops itself: it lost the job.)
    runs = run_with_a_dropped_connection(tmp_path, broker_vhost, out, {"QUEUEPRIO_LEASE_SECONDS": "0.000001"})
    assert runs["start"] >= 2  # (with no lease to speak of, the lapsed-lease recovery runs it again too)
