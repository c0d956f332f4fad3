"""Publishing many copies at once: send them all on one connection, then collect the confirms.

Used by a batch submission, the copies a caller's transaction left to its commit, the aging
sweep and the due jobs. Split from ``publish`` (one copy at a time), whose helpers it uses.
"""

from __future__ import annotations

from typing import Any

import celery

from ..conf import settings
from ..models import Job

# ``publish`` through the module: a fault test replaces publish._publish_copy to make a publish fail.
from . import publish
from .confirms import ConfirmTracker
from .events import sent_events

#: Task-sent events of a pipelined batch go out as one message per this many jobs.
EVENT_CHUNK = 500


class Pipeline:
    """Publish many copies on one connection now, collect their confirms later.

    ``send`` publishes without waiting (each copy gets the channel's next delivery tag);
    ``collect`` drains the acks once. Our own confirm mode on a dedicated connection: see
    ``queueprio.broker.confirms``. A batch's copies go out only after its rows are committed:
    a copy that overtakes its row is dropped by a worker after ``QUEUEPRIO_CLAIM_WAIT_SECONDS``,
    and a big batch's commit would come later than that (docs/benchmarks.md, issue 13).
    """

    def __init__(self, app: celery.Celery) -> None:
        self.app = app
        self.copies: list[Job] = []
        self.spans: list[tuple[int, int]] = []  # the delivery tags of each copy
        self.error: BaseException | None = None
        self._conn: Any = None

    def __enter__(self) -> Pipeline:
        try:
            self._conn = self.app.connection_for_write(transport_options={"confirm_publish": False})
            channel = self._conn.default_channel
            self.tracker = ConfirmTracker(channel)
            self.returned = publish.returned_on(channel)
            self.producer = self.app.amqp.Producer(channel, auto_declare=False)
        except Exception as exc:  # nothing can be published: every copy counts as unconfirmed
            self.error = exc
        return self

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            self._conn.release()

    def send(self, copies: list[Job]) -> None:
        """Publish ``copies`` without waiting for the broker; never raises (see ``collect``)."""
        self.copies += copies
        if self.error is not None or not copies:
            return
        events: list[dict[str, Any]] = []
        declared: set[str] = set()
        try:
            for job in copies:
                first = self.tracker.next_tag
                # No retry: a reconnect would restart the delivery tags.
                publish._publish_copy(self.app, job, self.producer, retry=False, events=events, declared=declared)
                self.spans.append((first, self.tracker.next_tag))
                if len(events) >= EVENT_CHUNK:
                    sent_events(self.app).publish_many(events, self.producer)
                    events = []
        except Exception as exc:
            self.error = exc
        sent_events(self.app).publish_many(events, self.producer)

    def collect(self) -> tuple[list[bool], BaseException | None]:
        """Wait for the confirms: per copy, whether RabbitMQ confirmed it, and the error if one stopped us."""
        copies, error = self.copies, self.error
        confirmed: list[bool] = []
        if self.spans:
            try:
                self.tracker.wait(self._conn, float(settings.CONFIRM_TIMEOUT))
                returned = self.returned
                # A returned (unroutable) message is acked too: RabbitMQ confirms it once it has
                # decided no queue takes it. It counts as not published.
                confirmed = [
                    self.tracker.confirmed(*span) and job.task_id not in returned
                    for job, span in zip(copies, self.spans, strict=False)
                ]
                bounced = [job.task_id for job in copies if job.task_id in returned]
                if bounced and error is None:
                    why = f"the broker returned {len(bounced)} message(s): {returned[bounced[0]]}"
                    error = publish.MessageReturned(why)
            except Exception as exc:  # the connection failed: nothing published is known to be confirmed
                error, confirmed = exc, [False] * len(self.spans)
        confirmed += [False] * (len(copies) - len(confirmed))
        if error is None and not all(confirmed):
            error = TimeoutError("RabbitMQ did not confirm every message")
        return confirmed, error


def send_confirmed(app: celery.Celery, copies: list[Job]) -> tuple[list[bool], BaseException | None]:
    """Publish many copies on one connection and wait for their confirms once, at the end.

    Returns, per copy, whether RabbitMQ confirmed it, and the error that stopped publishing
    (if one did). Callers decide what an unconfirmed copy means for its row.
    """
    with Pipeline(app) as pipeline:
        pipeline.send(copies)
        return pipeline.collect()
