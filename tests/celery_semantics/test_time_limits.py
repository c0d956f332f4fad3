"""Time limits, in Celery's order and then the band's: the call's, else the task's, else the band
of the job's priority (a soft limit at or above the hard one is left out: it would never fire)."""

from __future__ import annotations

import pytest
from celery import shared_task
from kombu import Connection

from queueprio import PriorityTask
from queueprio.broker.publish import message_of
from queueprio.models import Band, Job
from tests.support.semantics_tasks import add

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


@shared_task(name="sem.limited", base=PriorityTask, time_limit=40, soft_time_limit=30)
def limited(x: int) -> int:
    return x


def sent_limits(result: object) -> list[float | None]:
    return list(message_of(Job.objects.get(task_id=result.id)).headers["timelimit"])  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("submit", "expected"),
    [
        # the call's limits win over the task's and the band's
        (lambda out: limited.apply_async((1,), priority=5, time_limit=7, soft_time_limit=5), [7, 5]),
        # the task's own over the band's
        (lambda out: limited.apply_async((1,), priority=5), [40, 30]),
        # none set: the band of the priority (normal: 600 s soft, 900 s hard; urgent: 60/120)
        (lambda out: add.apply_async((1, 1, out), priority=5), [900, 600]),
        (lambda out: add.apply_async((1, 1, out), priority=1), [120, 60]),
        # a hard limit from the call and the band's soft one when it is shorter
        (lambda out: add.apply_async((1, 1, out), priority=5, time_limit=1000), [1000, 600]),
        # the band's soft limit at or above the call's hard one would never fire: left out
        (lambda out: add.apply_async((1, 1, out), priority=5, time_limit=100), [100, None]),
    ],
    ids=["call", "task", "band-normal", "band-urgent", "call-hard-band-soft", "soft-left-out"],
)
def test_time_limits__call_then_task_then_band(broker: Connection, out: str, submit, expected) -> None:
    assert Band.objects.get(name="normal").soft_time_limit == 600  # the table's premise
    assert sent_limits(submit(out)) == expected
