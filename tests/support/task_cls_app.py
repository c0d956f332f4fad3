"""A Celery app that makes every task of its own a queueprio task (``task_cls``), as a project may.

Run by a worker with ``-A tests.support.task_cls_app``; it shares the test settings (broker vhost,
database) and queues with the project's app.
"""

from __future__ import annotations

import os

from celery import Celery

from queueprio.celery import configure

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

app = Celery("task_cls_app", task_cls="queueprio:PriorityTask", set_as_current=False)
app.config_from_object("django.conf:settings", namespace="CELERY")
configure(app)


@app.task(name="tcls.double")
def double(x: int) -> int:
    """Written as a plain task; with ``task_cls`` it is a queueprio task all the same."""
    return 2 * x
