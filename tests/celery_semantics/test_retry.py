"""``retry()`` from inside the task's own transaction, or outside one: the job runs again, once per
retry, at its own priority, and its ledger row and stored result end right."""

from __future__ import annotations

from pathlib import Path

import pytest
from kombu import Connection

from queueprio.models import AgingReason, AgingStep, Job, JobState
from tests.support.ledger import finished, stored_result
from tests.support.polling import lines, wait_for
from tests.support.semantics_tasks import retry_in_atomic, retry_later
from tests.support.worker import running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def test_retry_inside_atomic__runs_again_once_per_retry_and_succeeds(tmp_path: Path, broker: Connection, out) -> None:
    result = retry_in_atomic.apply_async((out, 2), priority=3)
    with running_worker(tmp_path):
        job = wait_for(lambda: finished(result.id), timeout=60, message="the retried job")
        assert result.get(timeout=30) == 2
    assert lines(out) == ["run 0", "run 1", "run 2"]  # three runs, no more
    assert (job.state, job.retries, job.effective_priority) == (JobState.SUCCEEDED, 2, 3)
    assert AgingStep.objects.filter(job=job, reason=AgingReason.RETRY).count() == 2
    assert wait_for(lambda: stored_result(result.id), timeout=30).status == "SUCCESS"


def test_retry_with_a_countdown__waits_in_the_ledger_then_runs_at_its_own_priority(
    tmp_path: Path, broker: Connection, out
) -> None:
    result = retry_later.apply_async((out, 2.0), priority=4)
    with running_worker(tmp_path):
        wait_for(lambda: Job.objects.filter(task_id=result.id, state=JobState.SCHEDULED).exists(), timeout=30)
        job = wait_for(lambda: finished(result.id), timeout=60, message="the retried job")
    first, second = (float(line.split()[2]) for line in lines(out))
    assert second - first >= 2.0  # the countdown held
    assert (job.state, job.retries, job.effective_priority) == (JobState.SUCCEEDED, 1, 4)
