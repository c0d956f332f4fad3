"""Where a waiting job stands: how many jobs run before it, and when it is expected to start.

**Position** (exact, as things stand): RabbitMQ hands out a queue's messages most urgent first,
FIFO within a priority, where a republished copy (aging, an admin's change) joins the back of its
new level. So the jobs ahead of a queued job are the queued jobs of its queue that are more urgent,
plus those at its priority whose newest copy was published earlier. Two index range counts
(``queueprio_job_position_idx``) per job: cheap enough for a page of a hundred.

**Expected start** (an estimate; :func:`estimate` is pure): the jobs ahead are served in that order
by the worker processes consuming the queue, each job taking its task's recent mean run time; the
jobs running now free their processes after their remaining mean time. The job's own aging is on a
known schedule: each step it takes moves it ahead of every remaining job of the level it leaves,
so the estimate replays those steps. It can't know what will be submitted later (more urgent work
arriving pushes the start back) nor other jobs' aging; docs/observability.md gives its measured
error (``tests/observability/test_position.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import (
    Avg,
    Case,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from ..conf import settings
from ..models import Job, JobState
from ..priority import aged_priority

#: Run time assumed for a task with no finished job in the window (seconds).
DEFAULT_RUNTIME = 1.0
#: How far back run times are averaged.
RUNTIME_WINDOW = timedelta(hours=1)


def position(job: Job) -> int | None:
    """Jobs RabbitMQ hands out before this queued job, or for a held one the held jobs of its band
    released before it (``None`` otherwise)."""
    if job.state == JobState.HELD:
        return _held_ahead(job).count()
    if job.state != JobState.QUEUED or job.published_at is None:
        return None
    same_queue = Job.objects.filter(state=JobState.QUEUED, queue=job.queue)
    ahead = same_queue.filter(effective_priority__lt=job.effective_priority).count()
    level = same_queue.filter(effective_priority=job.effective_priority, published_at__lt=job.published_at)
    return ahead + level.count()


def _held_ahead(job: Job) -> QuerySet[Job]:
    """The held jobs of ``job``'s band released before it: more urgent, or as urgent and older
    (``maintenance.due.release_held``'s order; ``queueprio_job_held_idx``)."""
    if job.band_id is None:  # only a job with a band (and its running limit) is ever held
        return Job.objects.none()
    return Job.objects.filter(state=JobState.HELD, band_id=job.band_id).filter(
        Q(effective_priority__lt=job.effective_priority)
        | Q(effective_priority=job.effective_priority, queued_at__lt=job.queued_at)
    )


def with_position(jobs: QuerySet[Job]) -> QuerySet[Job]:
    """``jobs`` annotated with ``ahead``: :func:`position` of each queued one (``None`` otherwise),
    in the same query: a correlated count per queued row on the same index, no query per row."""
    ahead = (
        Job.objects.filter(state=JobState.QUEUED, queue=OuterRef("queue"))
        .filter(
            Q(effective_priority__lt=OuterRef("effective_priority"))
            | Q(effective_priority=OuterRef("effective_priority"), published_at__lt=OuterRef("published_at"))
        )
        .order_by()
        .values("state")
        .annotate(n=Count("pk"))
        .values("n")
    )
    counted = Coalesce(Subquery(ahead, output_field=IntegerField()), Value(0))
    return jobs.annotate(
        ahead=Case(
            When(state=JobState.QUEUED, published_at__isnull=False, then=counted),
            default=None,
            output_field=IntegerField(),
        )
    )


@dataclass(frozen=True)
class Ahead:
    """One job ahead, as the estimate sees it: its priority and how long it is expected to run."""

    priority: int
    runtime: float


@dataclass(frozen=True)
class Aging:
    """The aging rule and when the job's clock started (``aging_since``)."""

    requested: int
    since: datetime
    threshold: float | None
    boost: int
    max_boost: int

    def level_at(self, when: datetime) -> int:
        if self.threshold is None:
            return self.requested
        waited = (when - self.since).total_seconds()
        return aged_priority(
            self.requested, waited=waited, threshold=self.threshold, boost=self.boost, max_boost=self.max_boost
        )


def estimate(
    now: datetime,
    ahead: Sequence[Ahead],
    *,
    level: int,
    running_left: Sequence[float],
    workers: int,
    aging: Aging | None = None,
) -> datetime:
    """When a job at ``level`` with ``ahead`` (in RabbitMQ's order) before it is expected to start.

    ``running_left``: the expected remaining seconds of each job running now; ``workers``: processes
    consuming the queue. Pure: every input is given.
    """
    workers = max(1, workers)
    # When each process is next free (seconds from now).
    free = sorted(max(0.0, left) for left in running_left)[:workers]
    free += [0.0] * (workers - len(free))
    steps = aging_steps(aging, now) if aging is not None else []
    remaining = list(ahead)
    while remaining:
        free.sort()
        while steps and steps[0][0] <= free[0]:
            # An aging step before the next process frees: the job passes every job less urgent.
            _, new_level = steps.pop(0)
            level = min(level, new_level)
            remaining = [job for job in remaining if job.priority <= level]
        if not remaining:
            break
        free[0] += remaining.pop(0).runtime
    return now + timedelta(seconds=min(free))


def aging_steps(aging: Aging, now: datetime) -> list[tuple[float, int]]:
    """The job's aging steps still to come: ``(seconds from now, level after it)``, a finite list."""
    if aging.threshold is None or aging.threshold <= 0 or aging.boost <= 0:
        return []
    waited = (now - aging.since).total_seconds()
    steps: list[tuple[float, int]] = []
    k = int(waited // aging.threshold) + 1
    while True:
        at = k * aging.threshold - waited
        after = aging.level_at(now + timedelta(seconds=at))
        if (steps and after >= steps[-1][1]) or (not steps and after >= aging.level_at(now)):
            break
        steps.append((at, after))
        k += 1
    return steps


def runtimes(now: datetime, task_names: set[str]) -> dict[str, float]:
    """Recent mean run time per task (seconds), from the ledger's finished jobs."""
    took = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    rows = (
        Job.objects.filter(
            task_name__in=task_names,
            state__in=(JobState.SUCCEEDED, JobState.FAILED),
            finished_at__gte=now - RUNTIME_WINDOW,
            started_at__isnull=False,
        )
        .values("task_name")
        .annotate(mean=Avg(took), n=Count("pk"))
    )
    return {row["task_name"]: row["mean"].total_seconds() for row in rows if row["mean"] is not None}


def expected_start(job: Job, *, now: datetime, workers: int) -> datetime | None:
    """The estimate for one waiting job, read from the ledger (``None`` unless scheduled, queued or held)."""
    if job.state == JobState.SCHEDULED:
        return job.eta
    if job.state == JobState.HELD:
        # Released one by one as its band's running slots free: the slots are the "processes"
        # (at most the band's limit, and no more than consume the queue); ahead of it, the band's
        # jobs already in the broker (release_held counts them against the free slots), then its
        # held jobs released before it.
        limit = job.band.max_running if job.band is not None else None
        if limit == 0:  # the band is paused: nothing of it starts
            return None
        band = Job.objects.filter(band=job.band)
        in_broker = band.filter(state=JobState.QUEUED).order_by("effective_priority", "published_at")
        held = _held_ahead(job).order_by("effective_priority", "queued_at")
        ahead_rows = [
            *in_broker.values_list("effective_priority", "task_name"),
            *held.values_list("effective_priority", "task_name"),
        ]
        running = list(band.filter(state=JobState.STARTED).values_list("task_name", "started_at"))
        workers = min(workers, limit) if limit is not None else workers
    elif job.state != JobState.QUEUED or job.published_at is None:
        return None
    else:
        same_queue = Job.objects.filter(queue=job.queue)
        ahead_rows = list(
            same_queue.filter(state=JobState.QUEUED)
            .filter(
                Q(effective_priority__lt=job.effective_priority)
                | Q(effective_priority=job.effective_priority, published_at__lt=job.published_at)
            )
            .order_by("effective_priority", "published_at")
            .values_list("effective_priority", "task_name")
        )
        running = list(same_queue.filter(state=JobState.STARTED).values_list("task_name", "started_at"))
    names = {name for _, name in ahead_rows} | {name for name, _ in running} | {job.task_name}
    mean = runtimes(now, names)
    ahead = [Ahead(priority, mean.get(name, DEFAULT_RUNTIME)) for priority, name in ahead_rows]
    left = [mean.get(name, DEFAULT_RUNTIME) - (now - started).total_seconds() for name, started in running if started]
    aging = Aging(
        job.requested_priority,
        job.aging_since or job.queued_at,
        settings.aging_threshold(),
        int(settings.AGING_BOOST),
        int(settings.AGING_MAX_BOOST),
    )
    return estimate(now, ahead, level=job.effective_priority, running_left=left, workers=workers, aging=aging)


@dataclass(frozen=True)
class Next:
    """A queued job at the head of its queue: its place there and when it is expected to start."""

    job: Job
    position: int
    #: ``None`` when no worker process consumes its queue.
    expected_start: datetime | None


def next_to_start(now: datetime, *, limit: int, workers_by_queue: dict[str, int]) -> list[Next]:
    """The ``limit`` queued jobs expected to start first, over every queue, soonest first.

    Per queue, one indexed read of its head (``queueprio_job_position_idx``) and one of its running
    jobs; each head job's estimate has the jobs before it as its ``ahead``. Aging is left out here:
    a job at the head of its queue passes nothing by aging before it starts.
    """
    queued = Job.objects.filter(state=JobState.QUEUED, published_at__isnull=False)
    found: list[Next] = []
    for queue in queued.order_by().values_list("queue", flat=True).distinct():
        head = list(queued.filter(queue=queue).order_by("effective_priority", "published_at")[:limit])
        running = list(Job.objects.filter(state=JobState.STARTED, queue=queue).values_list("task_name", "started_at"))
        mean = runtimes(now, {job.task_name for job in head} | {name for name, _ in running})
        left = [mean.get(name, DEFAULT_RUNTIME) - (now - at).total_seconds() for name, at in running if at]
        workers = workers_by_queue.get(queue, 0)
        ahead: list[Ahead] = []
        for index, job in enumerate(head):
            start = (
                estimate(now, ahead, level=job.effective_priority, running_left=left, workers=workers)
                if workers
                else None
            )
            found.append(Next(job, index, start))
            ahead.append(Ahead(job.effective_priority, mean.get(job.task_name, DEFAULT_RUNTIME)))
    never = now + timedelta(days=36500)
    found.sort(key=lambda n: (n.expected_start or never, n.position, n.job.effective_priority))
    return found[:limit]
