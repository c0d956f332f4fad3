"""A job's outcome stored for its caller by something that is not the worker running it.

Some jobs end without a worker storing their result: a revoke with no worker up, a publish that
failed after the caller's commit, a run lost too often for the scheduler to queue it again. A
worker storing an outcome passes Celery's backend the request of the message (its group, chord,
errbacks): that is what makes a chord's body fail instead of waiting forever, and a
``link_error`` run. These outcomes pass the same request, rebuilt from the job's stored message.
"""

from __future__ import annotations

import logging
from typing import Any

import celery
from celery.app.task import Context
from kombu.serialization import loads, prepare_accept_content

from ..models import Job
from .publish import message_of

logger = logging.getLogger("queueprio")


def request_of(app: celery.Celery, job: Job) -> Context | None:
    """What a worker's request for the job's message would say; ``None`` without a message."""
    if job.message_body is None:
        return None
    message = message_of(job)
    fields: dict[str, Any] = {**message.headers, "reply_to": message.properties.get("reply_to")}
    try:
        body = loads(
            message.body,
            message.content_type,
            message.content_encoding,
            accept=prepare_accept_content(app.conf.accept_content),
        )
        args, kwargs, embed = body
        fields.update(args=args, kwargs=kwargs, **(embed or {}))
    except Exception:  # a message of another protocol: its headers still name the task and group
        logger.warning("task_id=%s: could not decode its stored message body", job.task_id, exc_info=True)
    fields.setdefault("id", job.task_id)
    return Context(fields)


def store_failure(app: celery.Celery, job: Job, exc: Exception) -> None:
    """``FAILURE`` for the caller, with the message's errbacks and chord (never raises)."""
    try:
        app.backend.mark_as_failure(job.task_id, exc, request=request_of(app, job))
    except Exception:  # the result backend may be the thing that is down
        logger.exception("could not store the failure of task_id=%s", job.task_id)


def store_revoked(app: celery.Celery, job: Job, reason: str) -> None:
    """``REVOKED`` for the caller, as a worker stores it when it drops a revoked message."""
    try:
        app.backend.mark_as_revoked(job.task_id, reason, request=request_of(app, job))
    except Exception:
        logger.exception("could not store the revoke of task_id=%s", job.task_id)
