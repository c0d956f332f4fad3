"""``task_cls``: a project can make every task of its app a priority task; Celery's own built-in
tasks (``celery.*``) stay plain."""

from __future__ import annotations

from pathlib import Path

import pytest
from kombu import Connection

from queueprio.models import Job, JobState
from tests.support.polling import wait_for
from tests.support.worker import running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def test_task_cls__a_plain_looking_task_goes_through_the_ledger(tmp_path: Path, broker: Connection) -> None:
    from tests.support.task_cls_app import app, double

    result = double.apply_async((21,), priority=2)
    job = Job.objects.get(task_id=result.id)
    assert (job.task_name, job.requested_priority) == ("tcls.double", 2)
    assert not app.tasks["celery.accumulate"].queueprio_task  # Celery's own stay plain
    with running_worker(tmp_path, app="tests.support.task_cls_app"):
        assert result.get(timeout=60) == 42
    wait_for(lambda: Job.objects.filter(task_id=result.id, state=JobState.SUCCEEDED).exists(), timeout=30)
