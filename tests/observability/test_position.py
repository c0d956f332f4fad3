"""Position and expected start of a waiting job: the pure estimate as a table, position exact on a
known backlog."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from queueprio.models import Band, Job
from queueprio.observability.position import (
    Aging,
    Ahead,
    aging_steps,
    estimate,
    expected_start,
    next_to_start,
    position,
    with_position,
)
from tests.support.ledger import make_job

T = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def seconds(when: datetime) -> float:
    return (when - T).total_seconds()


@pytest.mark.parametrize(
    ("ahead", "running_left", "workers", "expected"),
    [
        ([], [], 1, 0.0),  # nothing ahead, a free process: now
        ([], [3.0], 1, 3.0),  # its process frees in 3 s
        ([Ahead(1, 2.0)] * 3, [], 1, 6.0),  # three jobs of 2 s ahead, one process
        ([Ahead(1, 2.0)] * 3, [], 2, 2.0),  # two processes share them: 2 s, 2 s, then 4 s: it starts at 2
        ([Ahead(1, 2.0)] * 4, [1.0], 2, 4.0),  # frees at 1 and 0: jobs start 0, 1, 2, 3; it at 4
    ],
)
def test_estimate__served_in_order_by_the_processes(ahead, running_left, workers, expected) -> None:
    assert seconds(estimate(T, ahead, level=5, running_left=running_left, workers=workers)) == expected


def test_estimate__an_aging_step_passes_the_less_urgent_jobs_ahead() -> None:
    # Level 9, aging one level per 10 s: after its first step it is at 8 and passes every 9
    ahead = [Ahead(9, 5.0)] * 10
    aging = Aging(requested=9, since=T, threshold=10.0, boost=1, max_boost=4)
    without = estimate(T, ahead, level=9, running_left=[], workers=1)
    with_aging = estimate(T, ahead, level=9, running_left=[], workers=1, aging=aging)
    assert seconds(without) == 50.0
    assert seconds(with_aging) == 10.0  # at 10 s the job in progress ends and it is first at level 8


def test_aging_steps__finite_up_to_the_floor() -> None:
    aging = Aging(requested=9, since=T - timedelta(seconds=15), threshold=10.0, boost=1, max_boost=3)
    assert aging_steps(aging, T) == [(5.0, 7), (15.0, 6)]
    assert aging_steps(Aging(9, T, 10.0, 0, 4), T) == []  # no boost: no steps, no endless loop


@pytest.mark.django_db
def test_position__more_urgent_first_then_fifo_within_a_level() -> None:
    now = T
    jobs = [
        make_job(queued_at=now, priority=p, queue="q", published_at=now + timedelta(seconds=i))
        for i, p in enumerate([5, 3, 5, 1, 5, 9])
    ]
    make_job(queued_at=now, priority=1, queue="other", published_at=now)  # another queue: not ahead
    make_job(queued_at=now, priority=1, queue="q", state="started", published_at=now)  # running: not ahead
    assert [position(job) for job in jobs] == [2, 1, 3, 0, 4, 5]


@pytest.mark.django_db
def test_held_job__position_in_its_band_and_a_start_paced_by_the_running_limit(settings) -> None:
    settings.QUEUEPRIO_AGING_ENABLED = False
    Band.objects.filter(name="background").update(max_running=1)
    now = T
    # One background job running for 0.25 s of its 1 s (no run time known: 1 s each), three held
    make_job(queued_at=now, priority=8, band="background", state="started", started_at=now - timedelta(seconds=0.25))
    held = [
        make_job(queued_at=now + timedelta(seconds=i), priority=p, band="background", state="held")
        for i, p in enumerate([9, 7, 9])
    ]
    make_job(queued_at=now, priority=6, band="normal", state="held")  # another band: not ahead
    # Released most urgent first, then oldest
    assert [position(job) for job in held] == [1, 0, 2]
    # The last one starts after the running job's 0.75 s and the two ahead, one at a time, though
    # four processes consume the queue (without the limit: at once, 0.75 s from now)
    start = expected_start(Job.objects.get(pk=held[2].pk), now=now, workers=4)
    assert start is not None
    assert seconds(start) == pytest.approx(0.75 + 1 + 1)


@pytest.mark.django_db
def test_with_position__the_same_counts_in_one_query(django_assert_num_queries) -> None:
    now = T
    jobs = [
        make_job(queued_at=now, priority=p, queue="q", published_at=now + timedelta(seconds=i))
        for i, p in enumerate([5, 3, 5, 1, 5, 9])
    ]
    make_job(queued_at=now, priority=1, queue="other", published_at=now)
    done = make_job(queued_at=now, priority=1, queue="q", state="succeeded", published_at=now)
    with django_assert_num_queries(1):
        annotated = {job.pk: job.ahead for job in with_position(Job.objects.all())}
    assert [annotated[job.pk] for job in jobs] == [position(job) for job in jobs] == [2, 1, 3, 0, 4, 5]
    assert annotated[done.pk] is None  # only queued jobs have a place


@pytest.mark.django_db
def test_next_to_start__the_heads_of_each_queue_soonest_first() -> None:
    now = T
    for i, p in enumerate([5, 3, 5, 1]):
        make_job(queued_at=now, priority=p, queue="q", published_at=now + timedelta(seconds=i), task="t.a")
    make_job(queued_at=now, priority=9, queue="idle", published_at=now, task="t.a")
    heads = next_to_start(now, limit=3, workers_by_queue={"q": 1, "idle": 1})
    # One process each; t.a has no run time in the window: 1 s each. The idle queue's job and q's
    # most urgent start now (the more urgent listed first), then q's next at +1 s.
    assert [(n.job.queue, n.job.effective_priority, n.position, seconds(n.expected_start)) for n in heads] == [
        ("q", 1, 0, 0.0),
        ("idle", 9, 0, 0.0),
        ("q", 3, 1, 1.0),
    ]
    # With no worker for a queue: its place, no estimate, listed last
    last = next_to_start(now, limit=10, workers_by_queue={"q": 1})
    assert (last[-1].job.queue, last[-1].expected_start) == ("idle", None)
