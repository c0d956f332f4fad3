"""Turn a ledger row into a broker message: the only place that calls Celery's own apply_async."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import celery
from amqp.exceptions import MessageNacked
from django.utils import timezone

from ..conf import settings
from ..exceptions import PublishFailed
from ..models import Band, Job, JobState
from ..registry import AnyTask
from .confirms import ConfirmTracker, DeferredConfirm
from .events import sent_events, unconfirmed
from .flower import monitor_options
from .protocol import (
    HEADER_BAND,
    HEADER_GENERATION,
    HEADER_PRIORITY,
    HEADER_QUEUED_AT,
    HEADER_REQUESTED,
    amqp_priority,
)

if TYPE_CHECKING:
    from celery.result import AsyncResult

logger = logging.getLogger("queueprio")


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


def send(task: AnyTask, job: Job, *, producer: Any = None, options: dict[str, Any] | None = None) -> None:
    """Publish the job's newest copy (``job.generation``) at its effective priority.

    ``options`` are the caller's Celery options for a first publish; a republish has only
    what the row kept. Raises whatever the broker raised, or :class:`MessageReturned` when
    no queue took the message; callers decide what a failure means for the row.
    """
    with task.app.producer_or_acquire(producer) as acquired:
        returned = returned_on(acquired.channel)
        _publish_copy(task, job, acquired, options)
    # With a confirm per message the return has arrived by now; a pipelined publisher
    # (send_confirmed, FirstCopy) looks once its confirms are in.
    _raise_if_returned(returned, job)


def _publish_copy(task: AnyTask, job: Job, producer: Any, options: dict[str, Any] | None) -> AsyncResult[Any]:
    options = {**monitor_options(job), **job.options, **(options or {})}
    options.pop("headers", None)
    if job.eta is not None:
        options["eta"] = job.eta
    headers = {
        HEADER_PRIORITY: job.effective_priority,
        HEADER_GENERATION: job.generation,
        HEADER_BAND: job.band,
        HEADER_REQUESTED: job.requested_priority,
        HEADER_QUEUED_AT: (job.eta or job.queued_at).timestamp(),
    }
    # Options Celery passes through to kombu, which celery-types doesn't list.
    options.update(mandatory=True, event_dispatcher=sent_events(task.app))
    return celery.Task.apply_async(
        task,
        job.args,
        job.kwargs,
        task_id=job.task_id,
        producer=producer,
        priority=amqp_priority(job.effective_priority),
        headers=headers,  # type: ignore[arg-type]  # values need not be str
        **options,
    )


def _raise_if_returned(returned: dict[str, str], job: Job) -> None:
    reason = returned.pop(job.task_id, None)
    if reason is not None:
        raise MessageReturned(f"the broker returned the message: {reason}")


def publish(task: AnyTask, job: Job, *, producer: Any = None, options: dict[str, Any] | None = None) -> None:
    """Publish a job's first copy; on failure mark its row and raise ``PublishFailed``."""
    try:
        send(task, job, producer=producer, options=options)
    except Exception as exc:
        failed(job, exc)


def failed(job: Job, exc: BaseException) -> None:
    """The first copy of a committed job was not confirmed: mark its row, free its place, tell the caller.

    Returns without raising only when the job was claimed meanwhile: RabbitMQ may hand a message
    to a waiting consumer before it confirms it, so a copy whose confirm was lost can still
    have arrived. Telling that caller "failed" would invite a second submission of a job that runs.
    """
    marked = Job.objects.filter(pk=job.pk, generation=job.generation, state=JobState.QUEUED).update(
        state=JobState.PUBLISH_FAILED,
        error=f"publish failed: {exc}",
        finished_at=timezone.now(),
        next_aging_at=None,
    )
    if marked:
        Band.objects.release(job.band)
    else:
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

        with FirstCopy(task, job, producer, options) as first:
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

    def __init__(self, task: AnyTask, job: Job, producer: Any = None, options: dict[str, Any] | None = None):
        self.task, self.job, self.options = task, job, options
        self._producer = task.app.producer_or_acquire(producer)
        self.error: BaseException | None = None
        self.deferred: DeferredConfirm | None = None
        #: Celery's result handle for the job, once sent.
        self.result: AsyncResult[Any] | None = None
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

    def send(self) -> None:
        """Publish once, without waiting for the confirm. Call inside the transaction, after admission."""
        try:
            with DeferredConfirm(self.producer.channel) as self.deferred:
                options = {**(self.options or {}), "retry": False}
                self.result = _publish_copy(self.task, self.job, self.producer, options)
        except Exception as exc:
            self.error = exc

    def confirm(self) -> None:
        """After the commit: the broker's confirm, or the ordinary publish as a fallback.

        Raises ``PublishFailed`` (and marks the row) when the job could not be published.
        """
        try:
            if self.error is not None:
                raise self.error
            if self.deferred is not None:
                self.deferred.wait(float(settings.CONFIRM_TIMEOUT))
            _raise_if_returned(self.returned, self.job)
            return
        except (MessageReturned, MessageNacked) as exc:
            failed(self.job, exc)  # the broker answered: publishing again would get the same answer
            return
        except Exception as exc:
            logger.warning(
                "publish inside the transaction failed, publishing again task_id=%s error=%r", self.job.task_id, exc
            )
            if self.error is None or (self.deferred is not None and self.deferred.unacked):
                self._discard(exc)  # no ack read: the channel is out of step
        publish(self.task, self.job, producer=self.producer, options=self.options)

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


def send_confirmed(app: Any, copies: list[tuple[AnyTask, Job]]) -> tuple[list[bool], BaseException | None]:
    """Publish many copies on one connection and wait for their confirms once, at the end.

    Returns, per copy, whether RabbitMQ confirmed it, and the error that stopped publishing
    (if one did). Callers decide what an unconfirmed copy means for its row.
    """
    spans: list[tuple[int, int]] = []  # the delivery tags of each copy
    error: BaseException | None = None
    try:
        # Our own confirm mode on a dedicated connection: see queueprio.broker.confirms.
        with app.connection_for_write(transport_options={"confirm_publish": False}) as conn:
            tracker = ConfirmTracker(conn.default_channel)
            returned = returned_on(conn.default_channel)
            producer = app.amqp.Producer(conn.default_channel, auto_declare=False)
            try:
                for task, job in copies:
                    first = tracker.next_tag
                    # No retry: a reconnect would restart the delivery tags.
                    send(task, job, producer=producer, options={"retry": False})
                    spans.append((first, tracker.next_tag))
            except Exception as exc:
                error = exc
            tracker.wait(conn, float(settings.CONFIRM_TIMEOUT))
            # A returned (unroutable) message is acked too: RabbitMQ confirms it once it has
            # decided no queue takes it. It counts as not published.
            confirmed = [
                tracker.confirmed(*span) and job.task_id not in returned
                for (_, job), span in zip(copies, spans, strict=False)
            ]
            bounced = [job.task_id for _, job in copies if job.task_id in returned]
            if bounced and error is None:
                error = MessageReturned(f"the broker returned {len(bounced)} message(s): {returned[bounced[0]]}")
    except Exception as exc:  # the connection itself failed: nothing published is known to be confirmed
        error, confirmed = exc, [False] * len(spans)
    confirmed += [False] * (len(copies) - len(spans))
    if error is None and not all(confirmed):
        error = TimeoutError("RabbitMQ did not confirm every message")
    return confirmed, error
