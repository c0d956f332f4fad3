"""queueprio's beat entries: created once after migrate, at the top priority, never overwritten."""

from __future__ import annotations

import pytest
from celery import current_app
from django.core.management.sql import emit_post_migrate_signal
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from queueprio.maintenance import schedule
from queueprio.priority import to_amqp

pytestmark = pytest.mark.django_db

TASKS = {"queueprio.age_waiting_jobs": 30, "queueprio.rollup_metrics": 60, "queueprio.prune": 3600}


def test_post_migrate__creates_every_periodic_task() -> None:
    PeriodicTask.objects.filter(task__in=TASKS).delete()
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    entries = {e.task: e for e in PeriodicTask.objects.filter(task__in=TASKS)}
    assert {task: e.interval.every for task, e in entries.items()} == TASKS
    for entry in entries.values():
        assert entry.enabled
        assert entry.interval.period == IntervalSchedule.SECONDS
        assert entry.priority == to_amqp(1)  # it must not wait behind the backlog it serves
        assert entry.expire_seconds == entry.interval.every * 3


def test_ensure_all__idempotent() -> None:
    schedule.ensure_all()
    assert schedule.ensure_all() == []
    assert PeriodicTask.objects.filter(task="queueprio.rollup_metrics").count() == 1


def test_ensure_all__keeps_what_an_admin_changed() -> None:
    PeriodicTask.objects.filter(task="queueprio.rollup_metrics").update(enabled=False)
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    assert PeriodicTask.objects.get(task="queueprio.rollup_metrics").enabled is False


def test_ensure_all__interval_from_settings(settings) -> None:
    settings.QUEUEPRIO_METRICS_ROLLUP_INTERVAL_SECONDS = 120
    PeriodicTask.objects.filter(task="queueprio.rollup_metrics").delete()
    assert schedule.ensure_all() == ["queueprio: roll up metrics"]
    assert PeriodicTask.objects.get(task="queueprio.rollup_metrics").interval.every == 120


def test_periodic_tasks__registered_and_routed_at_the_top_priority() -> None:
    from queueprio.broker.router import route_task

    for name in TASKS:
        task = current_app.tasks[name]
        assert route_task(name, (), {}, {}, task=task)["priority"] == 10
