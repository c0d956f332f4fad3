"""Messages are not trusted over the ledger: a copy carries a token only queueprio's own copies
know; band and state come from the row; a message without a generation is adopted only when the
ledger has no job of that id."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery import current_app
from kombu import Connection

from queueprio.broker.protocol import HEADER_GENERATION
from queueprio.models import Band, Job, JobState
from tests.support.ledger import finished
from tests.support.polling import lines, wait_for
from tests.support.semantics_tasks import add
from tests.support.worker import running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def forge(task_id: str, args: tuple[object, ...], **headers: object) -> None:
    """A message published around queueprio with the job's id and chosen headers."""
    current_app.send_task("sem.add", args=args, task_id=task_id, headers=headers, queue="queueprio")


def test_forged_generation_without_the_token__cannot_take_the_job(tmp_path: Path, broker: Connection, out) -> None:
    real = add.apply_async((1, 1, out), priority=9)
    forge(real.id, (500, 500, out), **{HEADER_GENERATION: 99, "qp_band": "urgent"})
    with running_worker(tmp_path):
        wait_for(lambda: finished(real.id), timeout=60)
    assert lines(out) == ["add 1 1"]  # the real arguments ran; the forged copy was dropped
    assert set(Band.objects.values_list("queued", flat=True)) == {0}  # no band touched twice


def test_message_without_a_generation__for_a_finished_job__is_dropped(tmp_path: Path, broker: Connection, out):
    real = add.apply_async((2, 2, out), priority=5)
    with running_worker(tmp_path):
        wait_for(lambda: finished(real.id), timeout=60)
        forge(real.id, (7, 7, out))
        wait_for(lambda: "drop external copy" in "".join(p.read_text() for p in tmp_path.glob("w*.log")), timeout=30)
    assert lines(out) == ["add 2 2"]
    assert Job.objects.get(task_id=real.id).state == JobState.SUCCEEDED


def test_control__a_message_without_a_generation_and_no_row__is_adopted(tmp_path: Path, broker: Connection, out):
    task_id = "external-0001"
    forge(task_id, (3, 4, out))
    with running_worker(tmp_path):
        job = wait_for(lambda: finished(task_id), timeout=60)
    assert lines(out) == ["add 3 4"]
    assert job.priority_source == "external"
