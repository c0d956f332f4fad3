"""Scenario 2, a host cut off mid-job: its link goes down for longer than the AMQP heartbeat.

RabbitMQ closes the silent connection and hands the host's unacknowledged jobs to the other host,
which takes them over once their leases have lapsed. The cut-off runs can't renew their leases
(the database is behind the same link), so they stop their own processes before the leases run
out: when the link comes back, they do not also complete. The guarantee tested is the stronger
one: one completion per job (the side-effect file has one ``done`` line each), not merely one
recorded success. The control turns the self-stop off on the cut-off host: its runs then complete
too once the link is back, and the jobs complete twice.
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import pytest

from queueprio.models import Job, JobState
from tests.celery_semantics.conftest import band_books
from tests.support.polling import lines, wait_for
from tests.support.tasks import record_completion

from .conftest import Lab, host_worker

pytestmark = [pytest.mark.machines, pytest.mark.django_db(transaction=True)]

JOBS = 2
JOB_SECONDS = 15.0
LEASE = {"QUEUEPRIO_LEASE_SECONDS": "6"}
#: The control worker's task modules: the suite's, plus the one that turns the self-stop off.
CONTROL_MODULES = (
    "tests.support.tasks,tests.support.semantics_tasks,tests.support.django_tasks,tests.machines.no_self_stop"
)


def starts(out: str) -> list[tuple[str, str]]:
    """``(label, host)`` per start line."""
    return [(p[1], p[2].split("@")[1]) for p in (line.split() for line in lines(out)) if p[0] == "start"]


def a_log(lab: Lab, tmp_path: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in tmp_path.glob(f"{lab.hosts[0].name}-*.log"))


def cut_off_mid_job(lab: Lab, tmp_path: Path, out: str, *, cut_env: dict[str, str]) -> Counter[str]:
    """Two jobs start on host A; A is cut off until host B has run both; A comes back.

    The link stays down longer than the jobs last: a run that went on would finish its body (and
    write its ``done`` line: the file system is shared) while cut off. Returns the ``done`` counts.
    """
    host_a, host_b = lab.hosts
    labels = [f"job{n}" for n in range(JOBS)]
    with ExitStack() as stack:
        stack.enter_context(host_worker(lab, host_a, tmp_path, concurrency=JOBS, env={**LEASE, **cut_env}))
        for label in labels:
            record_completion.apply_async((label, out, JOB_SECONDS), priority=5)
        wait_for(lambda: len(starts(out)) == JOBS, timeout=60, message="both jobs to start on host A")
        assert {host for _, host in starts(out)} == {host_a.name}
        stack.enter_context(host_worker(lab, host_b, tmp_path, concurrency=JOBS, env=LEASE))

        # When A's link goes down mid-job, for longer than the heartbeat and the jobs
        host_a.cut()
        cut_at = time.monotonic()
        assert not host_a.reaches(host_a.gateway, lab.pg.port)
        wait_for(
            lambda: Job.objects.filter(state=JobState.SUCCEEDED).count() == JOBS,
            timeout=180,
            interval=0.5,
            message="host B to run both jobs while A is cut off",
        )
        assert time.monotonic() - cut_at > JOB_SECONDS  # A's runs would have ended by now
        assert sum(1 for _, host in starts(out) if host == host_b.name) == JOBS
        # ... and comes back
        host_a.restore()
        wait_for(lambda: host_a.reaches(host_a.gateway, lab.pg.port), timeout=30, message="A's link to come back")
        # A's worker sees its pool processes gone (or, in the control, done) once it hears again.
        wait_for(
            lambda: a_log(lab, tmp_path).count("WorkerLostError(") + a_log(lab, tmp_path).count("succeeded in") >= JOBS,
            timeout=60,
            interval=0.5,
            message="host A's worker to report how its runs ended",
        )
    done = Counter(line.split()[1] for line in lines(out) if line.startswith("done "))
    assert set(done) == set(labels), "a job was lost"
    # The ledger's record is B's either way: a late finish from A changes nothing.
    assert Job.objects.exclude(state=JobState.SUCCEEDED).count() == 0
    assert all(host_b.name in worker for worker in Job.objects.values_list("worker", flat=True))
    books = band_books()
    assert {name: pair for name, pair in books.items() if pair[0] != pair[1]} == {}, books
    return done


def test_a_cut_off_host_stops_its_runs__one_completion_per_job(machines: Lab, tmp_path: Path) -> None:
    out = str(tmp_path / "runs.txt")
    done = cut_off_mid_job(machines, tmp_path, out, cut_env={})
    assert done == dict.fromkeys(done, 1), "a job completed twice"
    # How: each cut-off run stopped itself before its lease ran out, while the link was down
    # (after failed renewals, or, when a renewal hangs on the dead connection, by the watchdog).
    assert a_log(machines, tmp_path).count("the lease could not be renewed before it ran out") == JOBS


def test_control__without_the_self_stop_the_cut_off_runs_complete_too(machines: Lab, tmp_path: Path) -> None:
    out = str(tmp_path / "runs.txt")
    done = cut_off_mid_job(machines, tmp_path, out, cut_env={"QUEUEPRIO_EXTRA_TASK_MODULES": CONTROL_MODULES})
    assert done == dict.fromkeys(done, 2)
