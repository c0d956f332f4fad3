"""Publishing a job's copies, each one the job's stored message (``broker.message``), with confirms.

The only place that sends task messages: the first copy (``FirstCopy``, or ``publish`` after a
caller's commit), many copies pipelined (``send_confirmed``: batches, the aging sweep, due jobs,
recoveries), and one copy (``send``). Every copy is published ``mandatory`` and confirmed.
"""

from __future__ import annotations

import logging
from typing import Any

import celery
from amqp.exceptions import MessageNacked
from django.db import transaction
from django.utils import timezone

from ..conf import settings
from ..exceptions import PublishFailed
from ..models import Band, Job, JobState
from .confirms import DeferredConfirm
from .events import sent_events, unconfirmed
from .message import StoredMessage, copy_headers
from .protocol import amqp_priority
from .queues import queue_for

logger = logging.getLogger("queueprio")


def message_of(job: Job) -> StoredMessage:
    """The job's stored message (decoded once per row object)."""
    cached: StoredMessage | None = getattr(job, "_qp_message", None)
    if cached is None:
        if job.message_body is None:
            raise ValueError(f"job {job.task_id} has no stored message")
        cached = StoredMessage.from_ledger(job.message_body, job.message_meta)
        job._qp_message = cached  # type: ignore[attr-defined]
    return cached


def keep_message(job: Job, message: StoredMessage) -> None:
    """Give a row (saved or not) its message: the columns, and the decoded form for this process."""
    job.message_body = message.body
    job.message_meta = message.meta_text()
    job._qp_message = message  # type: ignore[attr-defined]


def route_of(app: celery.Celery, job: Job, message: StoredMessage) -> tuple[str, str, str, list[Any]]:
    """``(queue, exchange, routing key, declare)`` for the job's newest copy.

    A message that Celery routed to one of queueprio's queues follows the job's priority (the
    reserved lane when it is urgent enough); one routed elsewhere by the caller stays there.
    """
    ours = {settings.QUEUE, settings.LANE_QUEUE}
    name = queue_for(job.effective_priority) if message.queue in ours else message.queue
    queue = app.amqp.queues.get(name)
    if queue is None:
        return name, message.exchange, message.routing_key, []
    if (queue.exchange.type or "direct") == "direct":  # as Celery sends it: the default exchange
        return name, "", name, [queue]
    return name, queue.exchange.name, queue.routing_key or name, [queue]


def _publish_copy(
    app: celery.Celery,
    job: Job,
    producer: Any,
    *,
    retry: bool = False,
    retry_policy: dict[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
    declared: set[str] | None = None,
) -> None:
    """Publish one copy. ``events``: collect its task-sent event there (sent in chunks by the
    caller) instead of publishing it now. ``declared``: queues already declared on this
    channel, not declared again (kombu's check per message costs more than the publish's
    own framing when a batch publishes thousands)."""
    message = message_of(job)
    queue, exchange, routing_key, declare = route_of(app, job, message)
    if declared is not None:
        if queue in declared:
            declare = []
        else:
            declared.add(queue)
    priority = job.effective_priority
    headers = copy_headers(
        message,
        generation=job.generation,
        priority=priority,
        requested=job.requested_priority,
        queued_at=(job.eta or job.queued_at).timestamp(),
        token=job.token,
    )
    producer.publish(
        message.body,
        exchange=exchange,
        routing_key=routing_key,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        compression="",  # the stored body is already compressed, if the caller asked for it
        headers=headers,
        priority=amqp_priority(priority),
        delivery_mode=message.delivery_mode,
        mandatory=True,
        declare=declare,
        retry=retry,
        retry_policy=retry_policy or app.conf.task_publish_retry_policy,
        **message.properties,
    )
    job.queue = queue
    if message.sent_event is not None:
        # Flower's task-sent event, on a channel that doesn't wait for confirms (broker.events).
        fields = {
            **message.sent_event,
            "kwargs": headers["kwargsrepr"],
            "retries": headers.get("retries", 0),
            "eta": None,
            "queue": queue,
            "exchange": exchange,
            "routing_key": routing_key,
        }
        if events is None:
            sent_events(app).publish("task-sent", fields, producer)
        else:
            events.append(fields)


class MessageReturned(Exception):
    """The broker returned a mandatory message: no queue took it (deleted, unbound, misrouted)."""


def returned_on(channel: Any) -> dict[str, str]:
    """The task ids of messages the broker returned on ``channel`` (with why), watched from now on.

    Every copy is published ``mandatory``: a message no queue can take comes back as
    ``basic.return`` (before its publisher confirm, which RabbitMQ still sends as an ack).
    Without a handler py-amqp would raise in the middle of waiting for the confirm and leave
    that ack unread, to be mistaken for the next message's; with one, the ack is read as usual
    and the publisher looks the task id up here.
    """
    returned: dict[str, str] | None = getattr(channel, "queueprio_returned", None)
    if returned is None:
        returned = {}

        def on_return(exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
            properties = getattr(message, "properties", {}) or {}
            task_id = properties.get("correlation_id") or (properties.get("application_headers") or {}).get("id")
            returned[str(task_id)] = f"{exc} (exchange {exchange!r}, routing key {routing_key!r})"

        channel.events["basic_return"].add(on_return)
        channel.queueprio_returned = returned
    return returned


def send(
    job: Job,
    *,
    app: celery.Celery | None = None,
    producer: Any = None,
    retry: bool | None = None,
    retry_policy: dict[str, Any] | None = None,
) -> None:
    """Publish the job's newest copy (``job.generation``) at its effective priority, confirmed.

    ``retry``/``retry_policy``: the caller's, for a first copy; the app's otherwise. Raises
    whatever the broker raised, or :class:`MessageReturned` when no queue took the message;
    callers decide what a failure means for the row.
    """
    app = app or celery.current_app
    retry = app.conf.task_publish_retry if retry is None else retry
    with app.producer_or_acquire(producer) as acquired:
        returned = returned_on(acquired.channel)
        _publish_copy(app, job, acquired, retry=bool(retry), retry_policy=retry_policy)
    # With a confirm per message the return has arrived by now; a pipelined publisher
    # (send_confirmed, FirstCopy) looks once its confirms are in.
    _raise_if_returned(returned, job)


def _raise_if_returned(returned: dict[str, str], job: Job) -> None:
    reason = returned.pop(job.task_id, None)
    if reason is not None:
        raise MessageReturned(f"the broker returned the message: {reason}")


def publish(
    job: Job,
    *,
    app: celery.Celery | None = None,
    producer: Any = None,
    retry: bool | None = None,
    retry_policy: dict[str, Any] | None = None,
) -> None:
    """Publish a job's first copy; on failure mark its row and raise ``PublishFailed``."""
    try:
        send(job, app=app, producer=producer, retry=retry, retry_policy=retry_policy)
    except Exception as exc:
        failed(job, exc)


def failed(job: Job, exc: BaseException) -> None:
    """The first copy of a committed job was not confirmed: mark its row, free its place, tell the caller.

    Returns without raising only when the job was claimed meanwhile: RabbitMQ may hand a message
    to a waiting consumer before it confirms it, so a copy whose confirm was lost can still
    have arrived. Telling that caller "failed" would invite a second submission of a job that runs.
    """
    with transaction.atomic():  # the row and its band's counter change together
        marked = Job.objects.filter(pk=job.pk, generation=job.generation, state=JobState.QUEUED).update(
            state=JobState.PUBLISH_FAILED,
            error=f"publish failed: {exc}",
            finished_at=timezone.now(),
            next_aging_at=None,
        )
        if marked:
            Band.objects.release(job.band_id)
    if not marked:
        claimed = Job.objects.filter(pk=job.pk).values_list("claimed_generation", flat=True).first()
        if claimed is not None and claimed >= job.generation:
            logger.warning(
                "publish unconfirmed but the job was claimed task_id=%s task=%s error=%s",
                job.task_id,
                job.task_name,
                exc,
            )
            return
    logger.error(
        "publish failed task_id=%s task=%s priority=%s error=%s",
        job.task_id,
        job.task_name,
        job.effective_priority,
        exc,
    )
    raise PublishFailed(job.task_id, exc) from exc


class FirstCopy:
    """A fresh job's first copy, sent inside its ledger transaction and confirmed after the commit.

    ``submit`` (outside a caller's transaction) runs::

        with FirstCopy(app, producer) as first:
            job = ...capture the message with first.producer...
            with transaction.atomic():
                ...admit...; first.send(); ...insert the row...
            first.confirm()

    The message goes out before the row is committed, and RabbitMQ stores it while the
    database commits, instead of one waiting for the other. So a worker can receive the copy
    before its row is visible: the claim waits for the row (``queueprio.worker``). The
    caller still returns only once both the commit and the broker's confirm are in; a copy
    whose transaction rolled back finds no row and is dropped. A duplicate idempotency key is
    found before anything is sent (``dedup.join``, then again under a lock on the key inside the
    transaction, ``dedup.taken``), so a duplicate sends nothing.

    The transaction holds the band's row lock (on SQLite, the database's write lock), so what
    happens inside it is kept to one write to a connection that is already open: the channels
    are opened before the transaction, and the send inside it makes one attempt (``retry=False``).
    Anything that goes wrong falls back, after the commit, to the ordinary publish with the
    caller's retry policy (``publish``): a send that failed at once, or a confirm that never
    came (a pooled connection the broker closed while it was idle fails only when its ack is
    read). A second copy of the same generation is harmless: only one copy can win the claim.
    Only what the ordinary publish can't deliver either, or what the broker returned or nacked,
    marks the row ``publish_failed`` and raises ``PublishFailed``.
    """

    def __init__(
        self, app: celery.Celery, producer: Any = None, *, retry: bool | None = None, retry_policy: Any = None
    ):
        self.app, self.retry, self.retry_policy = app, retry, retry_policy
        self._producer = app.producer_or_acquire(producer)
        self.job: Job | None = None
        self.error: BaseException | None = None
        self.deferred: DeferredConfirm | None = None
        #: Set when the producer's connection is known broken: the pool then replaces it.
        self.broken: BaseException | None = None

    def __enter__(self) -> FirstCopy:
        self.producer = self._producer.__enter__()
        self.returned: dict[str, str] = {}
        try:
            # Open the channels now, outside the transaction (the first use connects).
            self.returned = returned_on(self.producer.channel)
            unconfirmed(self.producer)
        except Exception as exc:  # the send will fail at once and fall back after the commit
            logger.debug("producer not ready before the transaction: %r", exc)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.deferred is not None and self.deferred.unacked:
                # Left early (the insert failed): still read the ack, or the next publish on
                # this pooled channel would take it for its own.
                try:
                    self.deferred.wait(float(settings.CONFIRM_TIMEOUT))
                except Exception as error:
                    self._discard(error)
        finally:
            # A refusal raised through here (QueueFull, a duplicate) says nothing about the
            # broker connection: only a broken one is handed back for the pool to replace.
            broken = self.broken
            if broken is None:
                self._producer.__exit__(None, None, None)
            else:
                self._producer.__exit__(type(broken), broken, broken.__traceback__)

    def send(self, job: Job) -> None:
        """Publish once, without waiting for the confirm. Call inside the transaction, after admission."""
        self.job = job
        try:
            with DeferredConfirm(self.producer.channel) as self.deferred:
                _publish_copy(self.app, job, self.producer, retry=False)
        except Exception as exc:
            self.error = exc

    def confirm(self) -> None:
        """After the commit: the broker's confirm, or the ordinary publish as a fallback.

        Raises ``PublishFailed`` (and marks the row) when the job could not be published.
        """
        job = self.job
        if job is None:
            return
        try:
            if self.error is not None:
                raise self.error
            if self.deferred is not None:
                self.deferred.wait(float(settings.CONFIRM_TIMEOUT))
            _raise_if_returned(self.returned, job)
            return
        except (MessageReturned, MessageNacked) as exc:
            failed(job, exc)  # the broker answered: publishing again would get the same answer
            return
        except Exception as exc:
            logger.warning(
                "publish inside the transaction failed, publishing again task_id=%s error=%r", job.task_id, exc
            )
            if self.error is None or (self.deferred is not None and self.deferred.unacked):
                self._discard(exc)  # no ack read: the channel is out of step
        publish(job, app=self.app, producer=self.producer, retry=self.retry, retry_policy=self.retry_policy)

    def _discard(self, exc: BaseException) -> None:
        """Drop the AMQP connection under the producer, without network I/O (the broker may be the
        one not answering). Its next publish reconnects (kombu's ``ensure``)."""
        self.broken = exc
        if self.deferred is not None:
            self.deferred.unacked = 0
        transport = getattr(self.producer.connection, "_connection", None)
        try:
            if transport is not None:
                transport.collect()
        except Exception:  # already gone
            logger.debug("discarding the producer's connection failed", exc_info=True)
