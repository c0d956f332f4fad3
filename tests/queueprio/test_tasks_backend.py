"""Django's Tasks framework through queueprio's backend: real RabbitMQ, real worker processes."""

from __future__ import annotations

import random
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from kombu import Connection

from queueprio import InvalidArguments, enqueue
from queueprio.backends import QueueprioBackend
from queueprio.models import Job, JobState
from queueprio.taskbridge import compat, registry
from tests.support import django_tasks as dt
from tests.support.polling import lines, wait_for
from tests.support.worker import running_worker

SUCCESSFUL, FAILED, READY = (
    compat.TaskResultStatus.SUCCESSFUL,
    compat.TaskResultStatus.FAILED,
    compat.TaskResultStatus.READY,
)


def finished(result: compat.TaskResult) -> bool:
    result.refresh()
    return result.is_finished


# --- without a worker -------------------------------------------------------------------


def test_backend__declares_what_it_supports() -> None:
    backend = dt.note.get_backend()
    assert isinstance(backend, QueueprioBackend)
    assert (backend.supports_priority, backend.supports_defer, backend.supports_get_result) == (True, True, True)


def test_backend__out_of_range_priority_is_refused_by_django() -> None:
    with pytest.raises(compat.InvalidTask):
        dt.note.using(priority=101)


def test_registry__never_imports_a_path_it_was_not_given() -> None:
    # A message could name anything; the worker only looks its path up among validated tasks.
    assert registry.lookup("tests.support.never_imported.evil") is None
    assert "tests.support.never_imported" not in sys.modules
    assert registry.lookup(dt.note.module_path) is not None


@pytest.mark.django_db(transaction=True)
def test_runner__refuses_a_path_no_backend_validated(broker: Connection) -> None:
    with pytest.raises(InvalidArguments, match="not a Django task"):
        enqueue("queueprio.run_django_task", args=["os.system", ["true"], {}])
    assert not Job.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_enqueue__records_a_job_at_the_mapped_priority_and_reads_it_back(broker: Connection) -> None:
    result = dt.note.using(priority=-50).enqueue("x", "/dev/null")
    job = Job.objects.get(task_id=result.id)
    assert (job.task_name, job.requested_priority, job.state) == ("queueprio.run_django_task", 8, JobState.QUEUED)
    assert job.args == [dt.note.module_path, ["x", "/dev/null"], {}]
    read = dt.note.get_result(result.id)
    assert (read.status, read.args, read.task.func) == (READY, ["x", "/dev/null"], dt.note.func)


@pytest.mark.django_db
def test_get_result__unknown_id_does_not_exist() -> None:
    with pytest.raises(compat.TaskResultDoesNotExist):
        dt.note.get_backend().get_result("no-such-id")


# --- real worker ------------------------------------------------------------------------


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_backlog__runs_in_django_priority_order_and_results_read_back(tmp_path: Path, broker: Connection) -> None:
    # Given a shuffled backlog at five Django priorities, two each, submitted while no worker runs
    out = str(tmp_path / "order.txt")
    priorities = [100, 50, 0, -50, -100] * 2
    random.Random(12).shuffle(priorities)
    submitted = [dt.note.using(priority=p).enqueue(f"{p}:{seq}", out) for seq, p in enumerate(priorities)]
    # When one worker process drains it
    with running_worker(tmp_path, concurrency=1):
        wait_for(lambda: all(finished(r) for r in submitted), timeout=90, message="the Django tasks to finish")
    # Then the most urgent Django priority ran first, FIFO within one
    ran = [tuple(map(int, line.split(":"))) for line in lines(out)]
    assert ran == sorted(((p, seq) for seq, p in enumerate(priorities)), key=lambda ps: (-ps[0], ps[1]))
    # And every result reads back through the Tasks API
    for result in submitted:
        assert (result.status, result.return_value) == (SUCCESSFUL, result.args[0])
        assert result.started_at is not None
        assert result.finished_at is not None
        assert result.worker_ids


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_results__failure_context_json_and_run_after(tmp_path: Path, broker: Connection) -> None:
    out = str(tmp_path / "out.txt")
    run_after = timezone.now() + timedelta(seconds=3)
    with running_worker(tmp_path, concurrency=1):
        later = dt.note.using(run_after=run_after).enqueue("later", out)
        failing = dt.fail.enqueue("boom")
        context = dt.introspect.enqueue(out)
        urgent = dt.urgent_note.enqueue("urgent", out)
        wait_for(lambda: all(finished(r) for r in (failing, context, urgent)), timeout=60, message="the jobs")
        # run_after holds the job like a countdown: not started while the others ran. (On a
        # machine so loaded that the others took longer than the hold, this reading can't tell;
        # started_at >= run_after below still proves the hold.)
        if timezone.now() < run_after - timedelta(seconds=1):
            assert dt.note.get_result(later.id).status == READY
        wait_for(lambda: finished(later), timeout=30, message="the delayed job")
    assert later.status == SUCCESSFUL
    assert later.started_at is not None
    assert later.started_at >= run_after
    # A failure keeps its exception class and traceback
    assert failing.status == FAILED
    assert failing.errors[0].exception_class is ValueError
    assert "boom" in failing.errors[0].traceback
    # A task that takes the context sees its own result id and attempt
    assert context.return_value == [1, context.id]
    # Return values come back JSON-normalised, as from any Tasks backend
    assert urgent.return_value == {"label": "urgent", "pair": [1, 2]}
    assert Job.objects.get(task_id=urgent.id).requested_priority == 2  # Django 80
