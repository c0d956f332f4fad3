"""``Ignore``, ``Reject(requeue=...)`` and ``self.replace()``: every path ends the row in a terminal
state or hands it on, and the caller's ``AsyncResult`` gets the final result."""

from __future__ import annotations

from pathlib import Path

import pytest
from kombu import Connection

from queueprio.models import Job, JobState
from tests.support.polling import lines, wait_for
from tests.support.semantics_tasks import ignore_me, reject_me, replace_me
from tests.support.worker import running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def in_state(task_id: str, *states: str) -> Job | None:
    return Job.objects.filter(task_id=task_id, state__in=states).first()


def test_ignore__ends_ignored_and_a_new_submission_with_its_key_is_a_new_job(
    tmp_path: Path, broker: Connection, out
) -> None:
    first = ignore_me.apply_async((out,), priority=5, idempotency_key="ik")
    with running_worker(tmp_path):
        wait_for(lambda: in_state(first.id, JobState.IGNORED), timeout=60)
    assert ignore_me.apply_async((out,), priority=5, idempotency_key="ik").id != first.id


def test_reject_without_requeue__ends_rejected(tmp_path: Path, broker: Connection, out) -> None:
    result = reject_me.apply_async((out, False), priority=5)
    with running_worker(tmp_path):
        wait_for(lambda: in_state(result.id, JobState.REJECTED), timeout=60)
    assert lines(out) == ["run redelivered=False"]


def test_reject_with_requeue__the_same_copy_comes_back_and_runs_once_more(
    tmp_path: Path, broker: Connection, out
) -> None:
    result = reject_me.apply_async((out, True), priority=5)
    with running_worker(tmp_path):
        job = wait_for(lambda: in_state(result.id, JobState.SUCCEEDED), timeout=60)
        assert result.get(timeout=30) == "second time"
    assert lines(out) == ["run redelivered=False", "run redelivered=True"]
    assert job.worker_losses == 0


@pytest.mark.parametrize("with_plain", [False, True], ids=["queueprio-task", "plain-task"])
def test_replace__the_callers_result_is_the_replacements(
    tmp_path: Path, broker: Connection, out, with_plain: bool
) -> None:
    result = replace_me.apply_async((out, with_plain), priority=4)
    with running_worker(tmp_path):
        assert result.get(timeout=60) == 42
    assert lines(out) == ["replace_me", "plain_add 20 22" if with_plain else "add 20 22"]
    job = Job.objects.get(task_id=result.id)
    if with_plain:
        assert job.state == JobState.REPLACED  # handed to a task outside queueprio
    else:
        assert (job.state, job.task_name) == (JobState.SUCCEEDED, "sem.add")  # handed on under its id
