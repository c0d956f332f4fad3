"""Jobs submitted inside a caller's transaction: published once it commits, each on its own.

Django runs ``on_commit`` callbacks one after the other and stops at the first that raises. So
each submission registers its own callback as ``robust``: one job's failed publish never keeps
the others (nor the caller's own callbacks) from running. A failure is not silent: the row is
marked ``publish_failed`` and its band place given back (``broker.publish.failed``), an error is
logged, and the job's result is stored as a failure, so the caller's ``AsyncResult.get()``
raises :class:`~queueprio.exceptions.PublishFailed` instead of waiting for ever.
"""

from __future__ import annotations

import logging

import celery
from django.db import transaction

from ..broker import outcome, pipeline, publish
from ..exceptions import PublishFailed
from ..models import Job

logger = logging.getLogger("queueprio")


def publish_on_commit(app: celery.Celery, jobs: list[Job]) -> None:
    """Publish ``jobs`` (committed ``queued`` rows) once the caller's transaction commits."""
    if jobs:
        transaction.on_commit(lambda: publish_committed(app, jobs), robust=True)


def publish_committed(app: celery.Celery, jobs: list[Job]) -> None:
    """One confirmed publish for all of ``jobs``; each failure marked, logged and stored as the result."""
    if len(jobs) == 1:
        try:
            publish.publish(jobs[0], app=app)
        except PublishFailed as exc:
            report(app, jobs[0], exc)
        return
    confirmed, error = pipeline.send_confirmed(app, jobs)
    for job, ok in zip(jobs, confirmed, strict=True):
        if not ok:
            try:
                publish.failed(job, error or TimeoutError("RabbitMQ did not confirm the message"))
            except PublishFailed as exc:
                report(app, job, exc)


def report(app: celery.Celery, job: Job, exc: PublishFailed) -> None:
    """The caller has returned already: tell its result."""
    logger.error("publish after commit failed task_id=%s task=%s error=%s", job.task_id, job.task_name, exc)
    outcome.store_failure(app, job, exc)
