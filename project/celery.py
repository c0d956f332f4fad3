"""The Celery app: the canonical Django wiring plus queueprio's one call."""

from __future__ import annotations

import os

from celery import Celery

from queueprio.celery import configure

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("project")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Queues with x-max-priority, the router, confirms, acks late, prefetch 1, reject on worker
# lost, the task-sent event, the beat scheduler and the result backend, from Django settings;
# anything project/settings.py sets itself wins.
configure(app)
app.autodiscover_tasks()
