"""The worker's log keeps its job lines after the aging sweep ran in the same worker process.

The cause of issue 14's silent ``worker.log``: ``registry.priority_tasks()`` called
``app.loader.import_default_modules()`` on every sweep. That sends Celery's ``import_modules``
signal, whose Django fixup receiver runs ``django.setup()`` again, and ``django.setup()``
applies ``settings.LOGGING`` again: the root logger loses the handler the worker gave it
(and goes back to ``WARNING``), so the pool process that ran the sweep logs nothing more.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import celery
import pytest
from kombu import Connection

from queueprio.maintenance.tasks import age_waiting_jobs, prune
from queueprio.registry import import_task_modules, priority_tasks
from tests.support.ledger import finished
from tests.support.polling import wait_for
from tests.support.tasks import record
from tests.support.worker import Worker, running_worker


class Sentinel(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - never asked to emit
        pass


@pytest.fixture
def sentinel() -> Iterator[Sentinel]:
    """A handler on the root logger, as a Celery worker installs one, removed afterwards."""
    root = logging.getLogger()
    handler, level = Sentinel(), root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.mark.django_db
def test_priority_tasks__leaves_the_processes_logging_alone(sentinel: Sentinel) -> None:
    # Given a worker process (its loader imported the task modules at start) whose root
    # logger has the worker's handler at INFO
    app = celery.current_app
    app.loader.worker_initialized, was = True, app.loader.worker_initialized
    try:
        # When the sweep's code path asks for the registered queueprio tasks
        tasks = priority_tasks()
    finally:
        app.loader.worker_initialized = was
    # Then it found them, and the handler and the level are still there
    assert "tests.record" in tasks
    assert sentinel in logging.getLogger().handlers
    assert logging.getLogger().level == logging.INFO


@pytest.mark.django_db
def test_import_default_modules__is_what_replaced_the_handler(sentinel: Sentinel) -> None:
    # The control: what the code path did before, Celery's own import_default_modules, runs
    # django.setup() through the Django fixup and takes the worker's handler and level away.
    celery.current_app.loader.import_default_modules()
    assert sentinel not in logging.getLogger().handlers
    assert logging.getLogger().level == logging.WARNING


@pytest.mark.django_db
def test_import_task_modules__once_per_process_outside_a_worker(sentinel: Sentinel, monkeypatch) -> None:
    # Outside a worker (a web process, a shell) the task modules are imported once per process.
    calls: list[int] = []
    loader = celery.current_app.loader
    monkeypatch.setattr(loader, "worker_initialized", False)
    monkeypatch.setattr(loader, "import_default_modules", lambda: calls.append(1))
    monkeypatch.setattr("queueprio.registry._imported", set())
    for _ in range(3):
        import_task_modules(celery.current_app)
    assert calls == [1]


def succeeded_lines(worker: Worker) -> list[tuple[str, str]]:
    """``(task name, task id)`` of every ``Task … succeeded`` line of the worker's log, in order."""
    return re.findall(r"Task ([\w.]+)\[([0-9a-f-]+)\] succeeded", worker.output())


def run_and_see_logged(worker: Worker, tmp_path: Path, label: str) -> str:
    """Run one job; return its id once the worker's log has its ``succeeded`` line (or fail)."""
    result = record.apply_async(args=[label, str(tmp_path / "out.txt")], priority=5)
    wait_for(lambda: finished(result.id), timeout=30, message=f"job {label} to finish")
    wait_for(
        lambda: ("tests.record", result.id) in succeeded_lines(worker),
        timeout=10,
        message=f"the worker to log job {label}'s success",
    )
    return result.id


def run_maintenance_then_a_job(worker: Worker, tmp_path: Path, task: celery.Task) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    """A job, ``task``, another job, in one pool process; the log's success lines from the first job on."""
    # Given one pool process that logged a job before
    before = run_and_see_logged(worker, tmp_path, "before")
    # When it runs the maintenance task, then another job: one process, prefetch 1, acks late,
    # and the maintenance task at the top AMQP priority, so the job is delivered only once
    # the maintenance task has finished
    task.apply_async()
    after = record.apply_async(args=["after", str(tmp_path / "out.txt")], priority=5)
    wait_for(lambda: finished(after.id), timeout=30, message="the job after the maintenance task to finish")
    # Then the job after it is logged too
    wait_for(
        lambda: ("tests.record", after.id) in succeeded_lines(worker),
        timeout=10,
        message=f"the worker to log the job that ran after {task.name}",
    )
    lines = succeeded_lines(worker)
    return lines[lines.index(("tests.record", before)) :]


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_worker_log__job_lines_keep_coming_after_an_aging_sweep(tmp_path: Path, broker: Connection) -> None:
    with running_worker(tmp_path, concurrency=1) as worker:
        lines = run_maintenance_then_a_job(worker, tmp_path, age_waiting_jobs)
    # And the sweep's own success is logged, between the two jobs
    assert [name for name, _ in lines] == ["tests.record", "queueprio.age_waiting_jobs", "tests.record"]


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_worker_log__job_lines_keep_coming_after_a_prune(tmp_path: Path, broker: Connection) -> None:
    # The control the issue names: a prune never did this (it doesn't ask for the task registry).
    with running_worker(tmp_path, concurrency=1) as worker:
        lines = run_maintenance_then_a_job(worker, tmp_path, prune)
    assert [name for name, _ in lines] == ["tests.record", "queueprio.prune", "tests.record"]
