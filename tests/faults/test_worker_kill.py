"""Workers SIGKILLed mid-task, again and again: every job still completes, and completes once.

A job killed mid-run is redelivered (late acks, ``reject_on_worker_lost``) and started again by
the claiming copy, so a *start* may happen twice; a *completion* never does, and the ledger
records each job's success exactly once.

The kills land inside the task (right after its start line, during its 50 ms). A kill in the
instant between a task's last side effect and the ledger's ``finish`` commit would run the task
again, side effect and all: for a crash mid-task, late acks give at-least-once, not exactly-once.
"""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import pytest
from kombu import Connection

from queueprio.models import Band, Job, JobState
from queueprio.submission.batch import submit_batch
from tests.conftest import queue_depth
from tests.support.ledger import stored_statuses
from tests.support.polling import lines, wait_for
from tests.support.tasks import record_completion
from tests.support.worker import Worker, running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

JOBS = 1_000
KILLS = 10
#: Long enough that a kill sent right after a start line appears lands inside the task.
SECONDS = 0.05


def parse(out: str) -> tuple[Counter[str], Counter[str], list[str]]:
    starts, dones, order = Counter(), Counter(), []
    for line in lines(out):
        kind, label, *rest = line.split()
        if kind == "start":
            starts[label] += 1
            order.append(f"{label} {rest[0]}")
        else:
            dones[label] += 1
    return starts, dones, order


def busy_mid_task(worker: Worker, out: str, *, after: int) -> bool:
    """Has ``worker`` finished ``after`` jobs and started one it hasn't finished yet?"""
    host = worker.name.split("@")[0] + "@"
    _, dones, order = parse(out)
    mine = [entry.split()[0] for entry in order if entry.split()[1].startswith(host)]
    return len(mine) > after and dones[mine[-1]] == 0


def test_sigkill__every_job_completes_exactly_once(tmp_path: Path, broker: Connection) -> None:
    out = str(tmp_path / "runs.txt")
    labels = []
    for priority in range(1, 11):
        calls = [([f"p{priority}-{i}", out, SECONDS], {}) for i in range(JOBS // 10)]
        labels += [args[0] for args, _ in calls]
        submit_batch(record_completion, calls, priority=priority)

    with ExitStack() as stack:
        workers = [stack.enter_context(running_worker(tmp_path)) for _ in range(2)]
        for _ in range(KILLS):
            # Kill the older worker in the middle of a job, then replace it; the other keeps going.
            victim = workers.pop(0)
            wait_for(lambda v=victim: busy_mid_task(v, out, after=3), timeout=60, interval=0.005)
            victim.kill()
            workers.append(stack.enter_context(running_worker(tmp_path)))
        assert len(parse(out)[1]) < JOBS, "the run ended before the last kill: kills were not mid-run"
        wait_for(
            lambda: Job.objects.filter(state=JobState.SUCCEEDED).count() == JOBS,
            timeout=120,
            interval=0.5,
            message="every job to succeed",
        )
        wait_for(lambda: queue_depth(broker) == 0, timeout=30, message="the queue to drain")

    starts, dones, _ = parse(out)
    assert set(dones) == set(labels), "jobs never completed"
    assert {label: n for label, n in dones.items() if n != 1} == {}, "jobs completed twice"
    restarted = sum(n - 1 for n in starts.values())
    assert 1 <= restarted <= KILLS  # each kill interrupted at most the one job its worker held
    assert Job.objects.exclude(state=JobState.SUCCEEDED).count() == 0
    assert stored_statuses() == {"SUCCESS": JOBS}
    assert set(Band.objects.values_list("queued", flat=True)) == {0}  # every band place given back once
