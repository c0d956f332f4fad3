"""The submission path against the real broker: what is published, recorded and refused."""

from __future__ import annotations

import pytest
from celery.exceptions import TimeoutError as CeleryTimeout
from django.db import transaction
from kombu import Connection

from queueprio import InvalidPriority, Priority, PublishFailed, UnknownTask, enqueue
from queueprio.models import Band, Job, JobState, PrioritySource, Rejection, TaskPriority
from tests.conftest import queue_depth
from tests.support.messages import drain
from tests.support.tasks import defaulted, record

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def test_apply_async__publishes_mapped_priority_and_records_the_job(broker: Connection, tmp_path) -> None:
    result = record.apply_async(args=["x", str(tmp_path / "o")], priority=Priority.CRITICAL)

    [message] = drain(broker)
    assert message["id"] == result.id
    assert message["priority"] == 10  # our 1 is RabbitMQ's highest
    assert message["headers"]["qp_priority"] == 1
    job = Job.objects.get(task_id=result.id)
    assert (job.state, job.requested_priority, job.effective_priority) == (JobState.QUEUED, 1, 1)
    assert job.priority_source == PrioritySource.CALL


def test_delay_and_enqueue__take_the_same_path(broker: Connection, tmp_path) -> None:
    delayed = record.delay("d", str(tmp_path / "o"))
    enqueued = enqueue("tests.record", ["e", str(tmp_path / "o")], priority=7)

    by_id = {m["id"]: m["priority"] for m in drain(broker)}
    assert by_id == {delayed.id: 6, enqueued.id: 4}
    assert Job.objects.filter(task_id__in=[delayed.id, enqueued.id]).count() == 2


def test_admin_default__applies_to_the_next_submission_without_restart(
    broker: Connection, tmp_path, admin_client
) -> None:
    out = str(tmp_path / "o")
    before = defaulted.delay("a", out)  # code default 2
    row = TaskPriority.objects.get(task_name="tests.defaulted")
    # Change it the way an admin does: the changelist's list_editable form.
    response = admin_client.post(
        "/admin/queueprio/taskpriority/",
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-0-id": str(row.pk),
            "form-0-priority": "8",
            "_save": "Save",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    after = defaulted.delay("b", out)
    explicit = defaulted.apply_async(args=["c", out], priority=1)

    by_id = {m["id"]: m["priority"] for m in drain(broker)}
    assert by_id == {before.id: 9, after.id: 3, explicit.id: 10}
    assert Job.objects.get(task_id=after.id).priority_source == PrioritySource.ADMIN


@pytest.mark.parametrize("priority", [0, 11, 2.5, "3", True, -1])
def test_invalid_priority__raises_publishes_nothing_records_a_rejection(
    broker: Connection, tmp_path, priority: object
) -> None:
    with pytest.raises(InvalidPriority, match=r"1 \(most urgent\) to 10"):
        record.apply_async(args=["x", str(tmp_path / "o")], priority=priority)

    assert queue_depth(broker) == 0
    assert not Job.objects.exists()
    rejection = Rejection.objects.get()
    assert (rejection.reason, rejection.task_name) == ("invalid_priority", "tests.record")


def test_unknown_task__lists_the_known_ones(broker: Connection) -> None:
    with pytest.raises(UnknownTask, match=r"tests\.record"):
        enqueue("tests.nope", [])
    assert queue_depth(broker) == 0
    assert Rejection.objects.get().reason == "unknown_task"


def test_inside_a_transaction__publishes_only_after_commit(broker: Connection, tmp_path) -> None:
    with transaction.atomic():
        result = record.delay("t", str(tmp_path / "o"))
        assert queue_depth(broker) == 0
    assert [m["id"] for m in drain(broker)] == [result.id]


def test_rolled_back_transaction__publishes_nothing(broker: Connection, tmp_path) -> None:
    def submit_then_fail() -> None:
        with transaction.atomic():
            record.delay("t", str(tmp_path / "o"))
            raise RuntimeError("caller's error")

    with pytest.raises(RuntimeError):
        submit_then_fail()
    assert queue_depth(broker) == 0
    assert not Job.objects.exists()


def test_publish_failure__marks_the_row_and_tells_the_caller(tmp_path) -> None:
    from kombu import Connection as KombuConnection
    from kombu import Producer

    # Nothing listens on port 1: the publish fails after the row was written.
    dead = KombuConnection("amqp://guest:guest@127.0.0.1:1//", connect_timeout=1)
    with pytest.raises(PublishFailed, match="publishing task"):
        record.apply_async(args=["x", str(tmp_path / "o")], priority=3, retry=False, producer=Producer(dead))
    job = Job.objects.get()
    assert job.state == JobState.PUBLISH_FAILED
    assert "publish failed" in job.error
    assert Band.objects.get(pk=job.band_id).queued == 0  # its place in the band is given back


def test_ignore_result__get_returns_none_at_once_as_in_celery(broker: Connection, tmp_path) -> None:
    # No worker runs: a result that will never be stored must not be waited for (Celery's suite,
    # test_tasks::test_ignore_result, waited its full timeout here).
    ignored = record.apply_async(args=["x", str(tmp_path / "out.txt")], ignore_result=True)
    assert ignored.ignored is True
    assert ignored.get(timeout=1) is None
    # Control: a result that will be stored is waited for.
    kept = record.apply_async(args=["y", str(tmp_path / "out.txt")])
    assert kept.ignored is False
    with pytest.raises(CeleryTimeout):
        kept.get(timeout=0.5)
