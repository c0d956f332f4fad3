"""The rollup: closed minutes of the ledger into MinuteStat and lifetime totals, once each; pruning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from celery import current_app
from django.utils import timezone

from queueprio.maintenance.tasks import rollup_metrics
from queueprio.models import BandSample, DepthSample, MetricTotal, MinuteStat, RollupWatermark
from queueprio.observability import rollup
from queueprio.observability.histogram import DURATION_BOUNDS, quantile_from_histogram
from queueprio.priority import to_amqp
from tests.support.ledger import make_aging_step, make_job, make_rejection
from tests.support.polling import wait_for
from tests.support.worker import running_worker

pytestmark = pytest.mark.django_db  # the worker test below overrides it with transaction=True

T = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)
M = timedelta(minutes=1)


def stat(minute: datetime, priority: int, task: str = "tests.record") -> MinuteStat:
    return MinuteStat.objects.get(minute=minute, task_name=task, priority=priority)


def test_rollup__counts_each_event_in_its_minute_at_its_priority() -> None:
    # Given a job submitted at 12:00:10 at priority 4 that started 20 s later and ran 5 s,
    # and one submitted at 12:01:00 at priority 4 that failed after aging to 2
    make_job(queued_at=T + 10 * S, priority=4, state="succeeded", started_at=T + 30 * S, finished_at=T + 35 * S)
    make_job(
        queued_at=T + M, priority=4, effective=2, state="failed", started_at=T + M + 2 * S, finished_at=T + M + 3 * S
    )
    # When the rollup runs at 12:05
    assert rollup.rollup(T + 5 * M) > 0
    # Then submissions count at the requested priority, starts and outcomes at the effective one
    first = stat(T, 4)
    assert (first.submitted, first.started, first.succeeded) == (1, 1, 1)
    assert (first.wait_count, first.wait_sum, first.wait_max) == (1, 20.0, 20.0)
    assert (first.run_count, first.run_sum, first.run_max) == (1, 5.0, 5.0)
    assert stat(T + M, 4).submitted == 1
    assert (stat(T + M, 2).started, stat(T + M, 2).failed) == (1, 1)
    assert quantile_from_histogram(DURATION_BOUNDS, first.wait_buckets, 0.5, maximum=first.wait_max) == 20.0


def test_rollup__a_second_run_counts_nothing_twice() -> None:
    make_job(queued_at=T + 10 * S, priority=3)
    rollup.rollup(T + 5 * M)
    # When it runs again (same time, then later) nothing changes for the minutes already done
    assert rollup.rollup(T + 5 * M) == 0
    rollup.rollup(T + 9 * M)
    assert MinuteStat.objects.get().submitted == 1
    assert MetricTotal.objects.get().submitted == 1


def test_rollup__leaves_the_open_minute_and_the_grace_period_for_later(settings) -> None:
    settings.QUEUEPRIO_METRICS_GRACE_SECONDS = 30
    job_at = T + 5 * M + 10 * S
    make_job(queued_at=job_at, priority=3)
    # At 12:06:20 the 12:05 minute is closed but still inside the grace period
    rollup.rollup(T + 6 * M + 20 * S)
    assert RollupWatermark.objects.get().processed_until == T + 5 * M
    assert not MinuteStat.objects.filter(minute=T + 5 * M).exists()
    # Past the grace period it is counted
    rollup.rollup(T + 6 * M + 31 * S)
    assert stat(T + 5 * M, 3).submitted == 1


def test_rollup__a_first_run_backfills_one_hour() -> None:
    make_job(queued_at=T - 2 * timedelta(hours=1), priority=3)
    make_job(queued_at=T - 30 * M, priority=3)
    rollup.rollup(T + 30 * S + 1 * S)
    assert list(MinuteStat.objects.values_list("minute", flat=True)) == [T - 30 * M]


def test_rollup__wait_counts_from_the_eta_not_the_submission() -> None:
    make_job(queued_at=T, eta=T + 40 * S, priority=5, state="started", started_at=T + 45 * S)
    rollup.rollup(T + 5 * M)
    assert stat(T, 5).wait_sum == pytest.approx(5.0)


def test_rollup__rejections_by_reason_and_without_a_valid_priority() -> None:
    make_rejection(at=T + S, reason="queue_full", priority="2")
    make_rejection(at=T + 2 * S, reason="invalid_priority", priority="'urgent'")
    make_rejection(at=T + 3 * S, reason="invalid_priority", priority="11")
    rollup.rollup(T + 5 * M)
    assert (stat(T, 2).rejected, stat(T, 2).rejection_reasons) == (1, {"queue_full": 1})
    assert (stat(T, 0).rejected, stat(T, 0).rejection_reasons) == (2, {"invalid_priority": 2})


def test_rollup__aging_steps_count_at_the_priority_left() -> None:
    job = make_job(queued_at=T - 10 * M, priority=8, effective=6)
    make_aging_step(job, at=T + S, from_priority=8, to_priority=7)
    make_aging_step(job, at=T + 2 * S, from_priority=7, to_priority=6)
    make_aging_step(job, at=T + 3 * S, from_priority=6, to_priority=3, reason="admin")  # not aging
    rollup.rollup(T + 5 * M)
    assert (stat(T, 8).aged, stat(T, 7).aged) == (1, 1)
    assert not MinuteStat.objects.filter(priority=6, aged__gt=0).exists()


def test_rollup__lifetime_totals_add_up_across_runs() -> None:
    make_job(queued_at=T + S, priority=1, state="succeeded", started_at=T + 2 * S, finished_at=T + 3 * S)
    rollup.rollup(T + 2 * M)
    make_job(
        queued_at=T + 3 * M, priority=1, state="succeeded", started_at=T + 3 * M + S, finished_at=T + 3 * M + 4 * S
    )
    rollup.rollup(T + 6 * M)
    total = MetricTotal.objects.get(task_name="tests.record", priority=1)
    assert (total.submitted, total.started, total.succeeded, total.wait_count, total.run_count) == (2, 2, 2, 2, 2)
    assert total.run_sum == pytest.approx(4.0)
    assert sum(total.wait_buckets) == 2


def test_rollup__catches_up_at_most_a_day_per_run() -> None:
    RollupWatermark.objects.create(name=rollup.WATERMARK, processed_until=T - timedelta(days=3))
    rollup.rollup(T)
    assert RollupWatermark.objects.get().processed_until == T - timedelta(days=2)


def test_prune__deletes_rows_past_retention_in_batches(settings) -> None:
    settings.QUEUEPRIO_METRICS_RETENTION_DAYS = 14
    old, recent = T - timedelta(days=15), T - timedelta(days=13)
    MinuteStat.objects.bulk_create(
        MinuteStat(minute=when + i * M, task_name="t", priority=1) for when in (old, recent) for i in range(5)
    )
    DepthSample.objects.create(at=old, priority=1, queued=0)
    BandSample.objects.create(at=old, band="urgent", queued=0)
    assert rollup.delete_in_batches(MinuteStat.objects.filter(minute__lt=old + 2 * M), batch_size=1) == 2
    assert rollup.prune(T) == 3 + 1 + 1
    assert MinuteStat.objects.filter(minute__lt=T - timedelta(days=14)).count() == 0
    assert MinuteStat.objects.count() == 5


def test_rollup__rejected_names_outside_the_registered_tasks_count_as_other() -> None:
    # Given refusals of a registered task and of names a caller made up (unbounded)
    make_rejection(at=T + S, reason="queue_full", task="tests.record", priority="2")
    for i in range(5):
        make_rejection(at=T + S, reason="unknown_task", task=f"made.up.{i}", priority="2")
    make_rejection(at=T + S, reason="unknown_task", task="", priority="2")
    rollup.rollup(T + 5 * M)
    # Then the registered one keeps its name, and every other name is one row, "other"
    assert set(MetricTotal.objects.values_list("task_name", flat=True)) == {"tests.record", "other"}
    assert stat(T, 2, task="other").rejection_reasons == {"unknown_task": 6}
    assert stat(T, 2).rejection_reasons == {"queue_full": 1}


def test_prune__lifetime_totals_nothing_added_to_for_the_retention_go_too(settings) -> None:
    settings.QUEUEPRIO_METRICS_RETENTION_DAYS = 14
    MetricTotal.objects.create(task_name="gone.from.the.code", priority=3, updated_at=T - timedelta(days=15))
    MetricTotal.objects.create(task_name="tests.record", priority=3, updated_at=T - timedelta(days=13))
    assert rollup.prune(T) == 1
    assert list(MetricTotal.objects.values_list("task_name", flat=True)) == ["tests.record"]


def test_rollup__adding_to_a_total_renews_it() -> None:
    MetricTotal.objects.create(task_name="tests.record", priority=1, updated_at=T - timedelta(days=20))
    make_job(queued_at=T + S, priority=1)
    rollup.rollup(T + 2 * M)
    assert MetricTotal.objects.get(task_name="tests.record", priority=1).updated_at == T + 2 * M


def test_rollup_metrics_task__rolls_up_samples_depth_and_prunes() -> None:
    make_job(queued_at=T, priority=3)
    result = rollup_metrics.apply().get()
    assert set(result) == {"minutes", "pruned"}
    assert DepthSample.objects.filter(priority=3, queued=1).exists()
    assert DepthSample.objects.count() == 10
    assert BandSample.objects.filter(band="normal", queued=1).exists()


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_rollup_metrics_task__runs_in_a_real_worker_as_beat_sends_it(tmp_path, broker) -> None:
    # Given a worker that registered queueprio's periodic tasks (autodiscovery, or the app's ready())
    make_job(queued_at=timezone.now(), priority=4)
    env = {"QUEUEPRIO_EXTRA_TASK_MODULES": "tests.support.tasks,queueprio.tasks"}
    with running_worker(tmp_path, env=env):
        # When beat's message arrives (by name, at the priority the periodic task carries)
        current_app.send_task("queueprio.rollup_metrics", priority=to_amqp(1))
        # Then the worker rolled up and sampled the depth
        wait_for(lambda: DepthSample.objects.filter(priority=4, queued=1).exists(), timeout=30, message="a sample")
    assert RollupWatermark.objects.filter(name=rollup.WATERMARK).exists()
