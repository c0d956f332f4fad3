"""System checks for Celery settings that would quietly defeat priority."""

from __future__ import annotations

from typing import Any

import celery
from django.core import checks

from .conf import settings
from .priority import AMQP_MAX_PRIORITY


def _queue_has_priority(queue: Any) -> bool:
    arguments = getattr(queue, "queue_arguments", None) or {}
    return arguments.get("x-max-priority") == AMQP_MAX_PRIORITY


@checks.register(checks.Tags.compatibility)
def check_celery_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    conf = celery.current_app.conf
    errors: list[checks.CheckMessage] = []
    if (conf.worker_prefetch_multiplier or 0) != 1:
        errors.append(
            checks.Warning(
                f"worker_prefetch_multiplier is {conf.worker_prefetch_multiplier}, not 1.",
                hint="Each worker process then holds several messages, and an urgent job waits behind "
                "them. Set CELERY_WORKER_PREFETCH_MULTIPLIER = 1.",
                id="queueprio.W001",
            )
        )
    if not conf.task_acks_late:
        errors.append(
            checks.Warning(
                "task_acks_late is off.",
                hint="Early acks let the broker hand out the next message before the current one "
                "ran, and lose jobs when a worker dies. Set CELERY_TASK_ACKS_LATE = True.",
                id="queueprio.W002",
            )
        )
    if not conf.task_reject_on_worker_lost:
        errors.append(
            checks.Warning(
                "task_reject_on_worker_lost is off.",
                hint="A job whose worker process died is then marked failed instead of redelivered. "
                "Set CELERY_TASK_REJECT_ON_WORKER_LOST = True.",
                id="queueprio.W003",
            )
        )
    queues = {q.name: q for q in (conf.task_queues or ())}
    for name in {settings.QUEUE, settings.LANE_QUEUE if settings.LANE_MAX_PRIORITY is not None else None} - {None}:
        queue = queues.get(name)
        if queue is None or not _queue_has_priority(queue):
            errors.append(
                checks.Warning(
                    f"queue {name!r} is not declared with x-max-priority {AMQP_MAX_PRIORITY}.",
                    hint="RabbitMQ then ignores message priority. Declare it in CELERY_TASK_QUEUES with "
                    "queueprio.celery.priority_queue(name). An existing queue can't be changed: move "
                    "it with `manage.py queueprio migrate-queue`.",
                    id="queueprio.W004",
                )
            )
    broker = str(conf.broker_url or "")
    if not broker.startswith(("amqp", "pyamqp")):
        errors.append(
            checks.Warning(
                f"broker transport {broker.split(':', 1)[0]!r} does not honour AMQP priorities.",
                hint="queueprio schedules by priority only on RabbitMQ (amqp://).",
                id="queueprio.W005",
            )
        )
    return errors
