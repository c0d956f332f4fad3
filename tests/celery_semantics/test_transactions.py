"""Several submissions in one caller transaction: each is published once it commits, one failure
doesn't stop the rest, and every failure is marked and reported to its caller's result."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import transaction
from kombu import Connection, Exchange

from queueprio import PublishFailed
from queueprio.models import Job, JobState
from tests.support.messages import drain
from tests.support.semantics_tasks import add

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def unbound_exchange(broker: Connection) -> Iterator[str]:
    exchange = Exchange("queueprio-test-nowhere", type="direct", durable=False)
    exchange.bind(broker.default_channel).declare()
    yield exchange.name
    exchange.bind(broker.default_channel).delete()


def test_several_in_one_transaction__a_failed_first_publish_does_not_stop_the_others(
    broker: Connection, unbound_exchange: str, out: str
) -> None:
    ran_after: list[str] = []
    with transaction.atomic():
        doomed = add.apply_async((1, 1, out), priority=5, exchange=unbound_exchange, routing_key="x")
        ok = [add.apply_async((i, i, out), priority=5) for i in range(3)]
        transaction.on_commit(lambda: ran_after.append("the caller's own callback"))
    # Every other job was published; the caller's own callback ran too
    assert sorted(m["id"] for m in drain(broker)) == sorted(r.id for r in ok)
    assert ran_after == ["the caller's own callback"]
    # The failure is on the row and in the caller's result: not silent
    assert Job.objects.get(task_id=doomed.id).state == JobState.PUBLISH_FAILED
    with pytest.raises(PublishFailed):
        doomed.get(timeout=10, propagate=True)


def test_rolled_back__nothing_published_nothing_recorded(broker: Connection, out: str) -> None:
    def submit_then_fail() -> None:
        with transaction.atomic():
            add.apply_async((1, 1, out), priority=5)
            raise RuntimeError("the caller changed its mind")

    with pytest.raises(RuntimeError, match="changed its mind"):
        submit_then_fail()
    assert Job.objects.count() == 0
    assert drain(broker) == []


def test_control__without_robust_callbacks_django_stops_at_the_first_failure(tmp_path: Path) -> None:
    # Django's documented behaviour, which the robust registration exists for.
    ran: list[int] = []

    def boom() -> None:
        raise ValueError("first callback fails")

    def commit_two() -> None:
        with transaction.atomic():
            transaction.on_commit(boom)
            transaction.on_commit(lambda: ran.append(2))

    with pytest.raises(ValueError, match="first callback"):
        commit_two()
    assert ran == []
