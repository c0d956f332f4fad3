"""Scenario 4, PostgreSQL restarts under load (a fast shutdown: every session is cut).

While it is down, a submission fails at once with ``django.db.OperationalError`` (the row is
written before anything is published, so nothing is); the workers' claims, ``STARTED`` writes and
finishes wait for it and retry (``queueprio.worker.database``), so every accepted job runs once
and is recorded once. The control runs the same load with the retry switched off
(``QUEUEPRIO_DATABASE_RETRY_SECONDS=0``): jobs are then lost or run twice.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import pytest
from django.db import OperationalError, close_old_connections

from queueprio.models import Job, JobState
from tests.celery_semantics.conftest import band_books
from tests.support.polling import lines, wait_for
from tests.support.tasks import record_completion

from .conftest import Lab, host_worker, queue_depth

pytestmark = [pytest.mark.machines, pytest.mark.django_db(transaction=True)]

BEFORE, AFTER = 40, 20
JOB_SECONDS = 0.3
AWAY = 4.0
LEASE = {"QUEUEPRIO_LEASE_SECONDS": "6"}  # a lapsed lease is recovered within seconds


def run_through_a_restart(
    lab: Lab, tmp_path: Path, out: str, env: dict[str, str], settled: Callable[[list[str]], bool]
) -> tuple[list[str], list[str]]:
    """Submit a steady load, restart PostgreSQL in the middle, wait until ``settled(accepted)``;
    returns the (accepted, refused) labels."""
    accepted: list[str] = []
    refused: list[str] = []
    with ExitStack() as stack:
        for host in lab.hosts:
            stack.enter_context(host_worker(lab, host, tmp_path, env={**LEASE, **env}))
        restarted = threading.Event()

        def restart() -> None:
            try:
                lab.pg.restart(away=AWAY)
            finally:
                restarted.set()

        n = 0
        restarter: threading.Thread | None = None
        after = 0
        deadline = time.monotonic() + 120
        while after < AFTER:
            assert time.monotonic() < deadline, "the load did not get through the restart"
            close_old_connections()  # what the end of a web request does: a broken connection is dropped
            label = f"j{n}"
            n += 1
            began = time.monotonic()
            try:
                record_completion.apply_async((label, out, JOB_SECONDS), priority=1 + n % 10)
                accepted.append(label)
                if restarted.is_set():
                    after += 1
            except OperationalError:
                assert time.monotonic() - began < 10, "a submission hung on the database"
                refused.append(label)
            if len(accepted) == BEFORE and restarter is None:
                restarter = threading.Thread(target=restart)
                restarter.start()
            time.sleep(0.05)  # the load's pace, not a wait for anything
        assert restarter is not None
        restarter.join(timeout=120)
        close_old_connections()
        wait_for(lambda: settled(accepted), timeout=120, interval=0.5, message="the jobs to settle")
    return accepted, refused


def completions(out: str) -> Counter[str]:
    return Counter(line.split()[1] for line in lines(out) if line.startswith("done "))


def test_postgresql_restarts_under_load__every_job_once(machines: Lab, tmp_path: Path) -> None:
    out = str(tmp_path / "runs.txt")

    def all_succeeded(accepted: list[str]) -> bool:
        return Job.objects.filter(state=JobState.SUCCEEDED).count() >= len(accepted)

    accepted, refused = run_through_a_restart(machines, tmp_path, out, {}, all_succeeded)
    assert refused, "no submission saw the database down"
    done = completions(out)
    assert set(done) == set(accepted), "a job was lost (or a refused one ran)"
    assert done == dict.fromkeys(done, 1), "a job ran twice"
    assert Job.objects.count() == len(accepted)
    assert Job.objects.exclude(state=JobState.SUCCEEDED).count() == 0
    books = band_books()
    assert {name: pair for name, pair in books.items() if pair[0] != pair[1]} == {}, books
    logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*.log"))
    assert "database unavailable during" in logs  # the workers did meet the restart


def test_control__without_the_retry_jobs_are_lost_or_run_twice(machines: Lab, tmp_path: Path) -> None:
    out = str(tmp_path / "runs.txt")

    def quiet(accepted: list[str]) -> bool:
        # Nothing left to deliver and nothing running (a lapsed lease has been recovered and run).
        return queue_depth(machines) == 0 and not Job.objects.filter(state=JobState.STARTED).exists()

    accepted, _ = run_through_a_restart(machines, tmp_path, out, {"QUEUEPRIO_DATABASE_RETRY_SECONDS": "0"}, quiet)
    done = completions(out)
    lost = set(accepted) - set(done)
    twice = {label for label, n in done.items() if n > 1}
    assert lost or twice
