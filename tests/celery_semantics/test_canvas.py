"""Canvas and headers survive every copy: aging, an admin's set-priority, a raise by a duplicate
submission and lost-message recovery republish the job's own message, so chains, chords, groups,
``link``/``link_error`` and the caller's headers behave as in plain Celery; only the order changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from celery import chain, chord, group
from kombu import Connection

from queueprio.broker.publish import message_of
from queueprio.models import AgingStep, Job
from queueprio.operations.actions import set_priority
from tests.celery_semantics.conftest import age_now
from tests.support.ledger import finished
from tests.support.messages import drain
from tests.support.polling import lines, wait_for
from tests.support.semantics_tasks import add, adds_callback, collect, fail, headers, note, noted
from tests.support.worker import running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def republished(task_ids: list[str]) -> int:
    """How many aging steps the jobs took (each one a new copy in the broker)."""
    return AgingStep.objects.filter(job__task_id__in=task_ids).count()


def test_chain__first_task_aged_before_it_ran__the_chain_completes(tmp_path: Path, broker: Connection, aged, out):
    # Given a chain whose first task waits long enough to be aged (no worker yet)
    result = chain(add.s(1, 2, out), add.s(10, out), add.s(100, out)).apply_async(priority=9)
    first = Job.objects.get()  # only the first task is submitted until it runs
    assert age_now([first.task_id]) == 1
    # When a worker runs it
    with running_worker(tmp_path):
        # Then the rest of the chain runs, each step once, and the chain's result is right
        assert result.get(timeout=60) == 113
    assert lines(out) == ["add 1 2", "add 3 10", "add 13 100"]
    assert republished([first.task_id]) == 1


def test_chord__header_task_aged__the_body_runs_once_with_every_result(
    tmp_path: Path, broker: Connection, aged, out
) -> None:
    result = chord([add.s(i, i, out) for i in range(3)], collect.s(out)).apply_async(priority=9)
    header_ids = list(Job.objects.values_list("task_id", flat=True))
    assert age_now(header_ids) == 3
    with running_worker(tmp_path, concurrency=2):
        assert result.get(timeout=60) == 6
    assert sorted(lines(out)) == ["add 0 0", "add 1 1", "add 2 2", "collect [0, 2, 4]"]


def test_group__every_member_aged_and_raised_by_hand__results_in_order(
    tmp_path: Path, broker: Connection, aged, out
) -> None:
    result = group(add.s(i, 1, out) for i in range(4)).apply_async(priority=9)
    ids = list(Job.objects.values_list("task_id", flat=True))
    age_now(ids)
    set_priority(Job.objects.filter(task_id__in=ids[:2]), 1)  # an admin raises two of them
    with running_worker(tmp_path):
        assert result.get(timeout=60) == [1, 2, 3, 4]
    assert len(lines(out)) == 4
    assert republished(ids) == 6


def test_link_and_link_error__survive_a_republish(tmp_path: Path, broker: Connection, aged, out) -> None:
    ok = add.apply_async((2, 3, out), priority=9, link=note.s(out, "linked"))
    bad = fail.apply_async((out,), priority=9, link_error=note.si("errback", out, "errback"))
    assert age_now([ok.id, bad.id]) == 2
    with running_worker(tmp_path):
        wait_for(lambda: len(lines(out)) >= 4, timeout=60, message="both jobs and both callbacks")
    assert sorted(lines(out)) == ["add 2 3", "errback 'errback'", "fail", "linked 5"]


def test_headers__the_callers_header_reaches_the_worker_after_a_recovery(
    tmp_path: Path, broker: Connection, aged, out
) -> None:
    job = headers.apply_async((out, "x_trace"), priority=9, headers={"x_trace": "abc-123"})
    # A recovery: the job is at its floor and its newest copy is a threshold old
    Job.objects.filter(task_id=job.id).update(effective_priority=1, requested_priority=1)
    age_now([job.id])
    assert AgingStep.objects.filter(job__task_id=job.id, reason="recover").count() == 1
    assert message_of(Job.objects.get(task_id=job.id)).headers["x_trace"] == "abc-123"
    with running_worker(tmp_path):
        wait_for(lambda: finished(job.id), timeout=60, message="the job")
    assert lines(out) == ["header 'abc-123'"]


def test_dedup_raise__keeps_the_link(tmp_path: Path, broker: Connection, out) -> None:
    first = add.apply_async((1, 1, out), priority=9, idempotency_key="k1", link=note.s(out, "linked"))
    again = add.apply_async((1, 1, out), priority=2, idempotency_key="k1")  # raises the same job
    assert again.id == first.id
    assert Job.objects.get().effective_priority == 2
    with running_worker(tmp_path):
        wait_for(lambda: "linked 2" in lines(out), timeout=60, message="the link after the raised job")
    assert lines(out) == ["add 1 1", "linked 2"]


#: What a republish may change in a copy: the priority, the generation, the queueprio headers that
#: say them (and Flower's display of them), the time the test backdated. Nothing else.
MAY_CHANGE_HEADERS = {"qp_priority", "qp_generation", "qp_queued_at", "kwargsrepr"}
MAY_CHANGE_PROPERTIES = {"priority", "application_headers"}


def test_every_copy__is_the_first_message_but_for_priority_and_generation(broker: Connection, aged, out) -> None:
    # Given a message with everything Celery can carry: stamps, reply_to, correlation_id, time
    # limits, a caller's header, link and link_error (in the body's embed)
    sig = add.s(1, 2, out).set(reply_to="my-replies", time_limit=50, soft_time_limit=40, headers={"x_trace": "t"})
    sig.stamp(mark="blue")
    result = sig.apply_async(
        priority=9, link=note.s(out, "linked"), link_error=note.si("e", out, "errback"), idempotency_key="c"
    )
    # When aging, an admin's set-priority and a raise by a duplicate each publish a copy
    age_now([result.id])
    set_priority(Job.objects.filter(task_id=result.id), 3)
    add.apply_async((1, 2, out), priority=2, idempotency_key="c")
    copies = sorted(drain(broker), key=lambda c: c["headers"]["qp_generation"])
    assert [c["headers"]["qp_generation"] for c in copies] == [1, 2, 3, 4]
    # Then every copy is the first message but for what a republish may change
    first = copies[0]
    assert first["headers"]["stamps"] == {"mark": "blue"}
    assert first["properties"]["reply_to"] == "my-replies"
    for copy in copies[1:]:
        headers = {
            k
            for k in first["headers"].keys() | copy["headers"].keys()
            if first["headers"].get(k) != copy["headers"].get(k)
        }
        properties = {
            k
            for k in first["properties"].keys() | copy["properties"].keys()
            if first["properties"].get(k) != copy["properties"].get(k)
        }
        assert headers <= MAY_CHANGE_HEADERS, headers
        assert properties <= MAY_CHANGE_PROPERTIES, properties
        assert copy["body"] == first["body"]  # arguments, callbacks, errbacks, chain, chord
    # AMQP 11 - p: priority 9, aged five steps to 4, set to 3, raised to 2
    assert [c["priority"] for c in copies] == [2, 7, 8, 9]


def test_on_success_handler__runs_once_after_an_aged_copy(tmp_path: Path, broker: Connection, aged, out) -> None:
    result = noted.apply_async((7, out), priority=9)
    assert age_now([result.id]) == 1
    with running_worker(tmp_path):
        wait_for(lambda: finished(result.id), timeout=60, message="the job")
        wait_for(lambda: "on_success 7" in lines(out), timeout=30, message="the task's on_success")
    assert lines(out) == ["noted 7", "on_success 7"]


def test_callbacks_added_by_the_task_to_its_request__are_applied(tmp_path: Path, broker: Connection, out) -> None:
    result = adds_callback.apply_async((5, out), priority=5)
    with running_worker(tmp_path):
        wait_for(lambda: "added 5" in lines(out), timeout=60, message="the callback the task added")
    assert lines(out) == ["adds_callback 5", "added 5"]
    assert result.get(timeout=10) == 5
