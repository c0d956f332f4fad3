"""A duplicate submission that raises a job's priority goes through admission: it moves the job's
band place (refused with the usual rejection when the target band is full) and counts against the
urgent quota."""

from __future__ import annotations

import pytest
from kombu import Connection

from queueprio import QueueFull, QuotaExceeded
from queueprio.models import Band, Job, Rejection, UrgentQuota
from tests.support.semantics_tasks import add

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def test_raise__moves_the_band_place(broker: Connection, out: str) -> None:
    first = add.apply_async((1, 1, out), priority=9, idempotency_key="k")
    assert Band.objects.get(name="background").queued == 1
    add.apply_async((1, 1, out), priority=1, idempotency_key="k")
    job = Job.objects.get(task_id=first.id)
    assert (job.effective_priority, job.band_name, job.band_id) == (1, "background", Band.objects.get(name="urgent").pk)
    assert (Band.objects.get(name="background").queued, Band.objects.get(name="urgent").queued) == (0, 1)


def test_raise_into_a_full_band__refused_and_stored_the_job_stays(broker: Connection, out: str) -> None:
    Band.objects.filter(name="urgent").update(max_queued=1)
    add.apply_async((0, 0, out), priority=1)  # fills the urgent band
    first = add.apply_async((1, 1, out), priority=9, idempotency_key="k")
    with pytest.raises(QueueFull):
        add.apply_async((1, 1, out), priority=1, idempotency_key="k")
    job = Job.objects.get(task_id=first.id)
    assert (job.effective_priority, job.band_id) == (9, Band.objects.get(name="background").pk)
    assert Rejection.objects.filter(reason="queue_full", band="urgent").count() == 1


def test_raise__counts_against_the_urgent_quota(broker: Connection, out: str) -> None:
    UrgentQuota.objects.update(limit=2, max_priority=2, window_seconds=60)
    a = add.apply_async((1, 1, out), priority=9, idempotency_key="a", caller_key="alice")
    add.apply_async((1, 1, out), priority=1, idempotency_key="a", caller_key="alice")  # a raise: 1
    add.apply_async((2, 2, out), priority=1, caller_key="alice")  # a new urgent job: 2
    with pytest.raises(QuotaExceeded):
        add.apply_async((3, 3, out), priority=1, caller_key="alice")  # 3: over
    assert Job.objects.get(task_id=a.id).effective_priority == 1


def test_raise__of_another_callers_job_counts_against_the_raisers_quota(broker: Connection, out: str) -> None:
    UrgentQuota.objects.update(limit=2, max_priority=2, window_seconds=60)
    # Jobs submitted by alice at a bulk priority, then raised by bob's duplicates
    jobs = [add.apply_async((i, i, out), priority=9, idempotency_key=f"k{i}", caller_key="alice") for i in range(3)]
    add.apply_async((0, 0, out), priority=1, idempotency_key="k0", caller_key="bob")  # bob: 1
    add.apply_async((1, 1, out), priority=1, idempotency_key="k1", caller_key="bob")  # bob: 2
    # Before: bob's raises counted nowhere (the rows are alice's), so a third passed
    with pytest.raises(QuotaExceeded):
        add.apply_async((2, 2, out), priority=1, idempotency_key="k2", caller_key="bob")
    assert [Job.objects.get(task_id=j.id).effective_priority for j in jobs] == [1, 1, 9]


def test_raise__of_a_scheduled_job_is_recorded_and_counted(broker: Connection, out: str) -> None:
    from queueprio.models import AgingStep

    UrgentQuota.objects.update(limit=1, max_priority=2, window_seconds=60)
    later = add.apply_async((1, 1, out), priority=9, countdown=60, idempotency_key="s", caller_key="carol")
    add.apply_async((1, 1, out), priority=1, idempotency_key="s", caller_key="dave")  # dave: 1
    step = AgingStep.objects.get(job__task_id=later.id)
    assert (step.reason, step.caller_key, step.from_priority, step.to_priority) == ("dedup", "dave", 9, 1)
    with pytest.raises(QuotaExceeded):
        add.apply_async((2, 2, out), priority=1, caller_key="dave")


def test_duplicate_with_arguments_celery_refuses__a_type_error_not_a_join(broker: Connection, out: str) -> None:
    first = add.apply_async((1, 1, out), priority=9, idempotency_key="t")
    # add takes (x, y, path): Celery's own check refuses one argument too many
    with pytest.raises(TypeError):
        add.apply_async((1, 1, out, "extra"), priority=1, idempotency_key="t")
    assert Job.objects.get(task_id=first.id).effective_priority == 9  # not raised by a refused call
    assert Job.objects.count() == 1
