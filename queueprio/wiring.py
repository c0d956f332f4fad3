"""What ``queueprio.celery.configure(app)`` sets on a Celery app, and how to tell a user's own choice.

Kept apart from ``queueprio.celery`` so the system checks (a layer below) can name the same
values in their hints and know whether an app was configured. Nothing here touches models:
Django settings import ``queueprio.celery`` before the app registry is ready.
"""

from __future__ import annotations

import weakref
from typing import Any

import celery
from django.conf import settings as django_settings

from .broker.queues import priority_queue
from .conf import settings
from .worker import connections

ROUTER = "queueprio.celery.route_task"
BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
RESULTS_APP = "django_celery_results"
#: django-celery-results' table and admin, written in the ledger's transactions (``worker.results``).
RESULTS_BACKEND = "queueprio.worker.results:LedgerBackend"
#: django-celery-results' own name for its backend: works too, at two more commits per job.
PLAIN_RESULTS_BACKEND = "django-db"

#: Apps that went through ``configure`` (weakly held: a test may build and drop apps).
_configured: weakref.WeakSet[celery.Celery] = weakref.WeakSet()


def defaults() -> dict[str, Any]:
    """Every Celery setting queueprio needs, from the Django settings of now (lowercase names).

    The exchange and routing key of the default queue are left out on purpose: Celery derives
    both from ``task_default_queue``, so a user who renames only the queue stays consistent.
    """
    values: dict[str, Any] = {
        # Both queues are declared with x-max-priority: RabbitMQ ignores priority otherwise.
        "task_queues": (priority_queue(settings.QUEUE), priority_queue(settings.LANE_QUEUE)),
        "task_default_queue": settings.QUEUE,
        "task_routes": (ROUTER,),
        # A submission returns only once RabbitMQ has the message.
        "broker_transport_options": {"confirm_publish": True},
        # Priority needs all three: a worker process holds one message at a time, acks it only
        # when done, and gives it back to the broker if the process dies.
        "task_acks_late": True,
        "worker_prefetch_multiplier": 1,
        "task_reject_on_worker_lost": True,
        # Flower lists a job as soon as it is queued, with its priority.
        "task_send_sent_event": True,
        # The aging sweep, the metrics rollup and pruning live in django-celery-beat's tables.
        "beat_scheduler": BEAT_SCHEDULER,
        # A worker keeps its database connections per CONN_MAX_AGE, as a web process does,
        # instead of reconnecting for every task (queueprio.worker.connections).
        connections.SETTING: connections.DJANGO_LIFETIME,
    }
    if RESULTS_APP in getattr(django_settings, "INSTALLED_APPS", ()):
        values["result_backend"] = RESULTS_BACKEND
    return values


def setting_name(app: celery.Celery, key: str) -> str:
    """The name a user writes for ``key``: ``CELERY_TASK_ACKS_LATE`` with the usual namespace."""
    namespace = getattr(app, "namespace", None)
    return f"{namespace}_{key}".upper() if namespace else key


def is_explicit(conf: Any, app: celery.Celery, key: str) -> bool:
    """Did the user set ``key`` (in the config source, or on ``app.conf`` by hand)?

    A loaded configuration chains the user's changes, then the config source (Django settings,
    read through the namespace), then Celery's built-in defaults last. Only the last is not theirs.
    """
    names = {key, setting_name(app, key)}
    return any(name in mapping for mapping in conf.maps[:-1] for name in names)


def apply(app: celery.Celery, conf: Any) -> list[str]:
    """Set every value of :func:`defaults` the user did not set; returns the keys set."""
    applied = []
    for key, value in defaults().items():
        if not is_explicit(conf, app, key):
            conf[key] = value
            applied.append(key)
    return applied


def mark_configured(app: celery.Celery) -> None:
    """Remember that ``configure(app)`` was called (its values arrive when the configuration loads)."""
    _configured.add(app)


def is_configured(app: celery.Celery) -> bool:
    return app in _configured
