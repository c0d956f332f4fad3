"""A worker keeps its database connection between jobs per CONN_MAX_AGE (``worker.connections``)."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
from kombu import Connection

from tests.support.ledger import finished
from tests.support.polling import lines, wait_for
from tests.support.tasks import connections_opened
from tests.support.worker import running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def opened_per_job(tmp_path: Path, env: dict[str, str]) -> list[int]:
    """Run six jobs one after another in one pool process; how many connections it had opened at each."""
    out = tmp_path / "opened.txt"
    with running_worker(tmp_path, concurrency=1, env=env):
        for _ in range(6):
            result = connections_opened.apply_async(args=[str(out)])
            wait_for(lambda: finished(result.id), timeout=60, message="the job to finish")  # noqa: B023
    pids = {line.split()[0] for line in lines(str(out))}
    assert len(pids) == 1, "one pool process ran all six"
    return [int(line.split()[1]) for line in lines(str(out))]


def test_worker__reuses_its_connection_between_jobs(tmp_path: Path, broker: Connection) -> None:
    # CONN_MAX_AGE is 60 in the project's settings: one connection serves every job.
    opened = opened_per_job(tmp_path, {})
    assert opened == [opened[0]] * 6


def test_control__celerys_own_handling_reconnects_for_every_job(tmp_path: Path, broker: Connection) -> None:
    # With CELERY_DB_REUSE_MAX set by the project (here to Celery's default, None), Celery's
    # Django fixup closes the connection around every task, CONN_MAX_AGE notwithstanding.
    opened = opened_per_job(tmp_path, {"QUEUEPRIO_TEST_CELERY_DB_REUSE_MAX": "null"})
    assert all(later > earlier for earlier, later in pairwise(opened))


def test_conn_max_age_zero__closes_after_every_job(tmp_path: Path, broker: Connection) -> None:
    # Django's default: a connection lives for one request, here one task.
    opened = opened_per_job(tmp_path, {"QUEUEPRIO_TEST_CONN_MAX_AGE": "0"})
    assert all(later > earlier for earlier, later in pairwise(opened))
