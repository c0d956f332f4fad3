"""Move every message of an existing plain (FIFO) queue into queueprio's priority queues, without loss.

RabbitMQ can't add ``x-max-priority`` to an existing queue (406 PRECONDITION_FAILED), so adopting
queueprio means moving the backlog. Batch by batch:

1. take up to N messages from the old queue with ``basic_get`` (unacknowledged);
2. plan each one and insert the new ledger rows (committed first: a worker consuming the
   priority queue never receives a job it can't find) — see ``queueprio.operations.fifo_messages``;
3. publish the copies with publisher confirms and wait for every confirm;
4. only then ack the batch on the old queue, with one multiple-ack.

A crash, a failed publish or Ctrl-C at any point leaves the batch's unacked messages in the
old queue (RabbitMQ requeues them when the channel closes). Running the command again is
safe: a message whose job already has a ledger row never gets a second one, and of several
copies of a job exactly one runs (``queueprio.operations.fifo_messages`` explains each case). Messages without a
ledger row (tasks that aren't queueprio tasks) are at least once: a crash between the confirm
and the ack moves them twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import celery
from amqp.exceptions import NotFound, PreconditionFailed
from django.db import transaction

from ..broker.confirms import ConfirmTracker
from ..broker.queues import priority_queue
from ..conf import settings
from ..models import Job
from ..priority import AMQP_MAX_PRIORITY
from ..registry import priority_tasks
from . import fifo_messages

logger = logging.getLogger("queueprio")

DEFAULT_BATCH = 200


class Refused(Exception):
    """The migration can't start: nothing was changed."""


class Interrupted(Exception):
    """A batch was not confirmed: it stays in the old queue; what moved before is in ``report``."""

    def __init__(self, message: str, report: Report) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class Report:
    source: str
    found: int = 0  # messages in the old queue when the run started
    consumers: int = 0  # consumers of the old queue when the run started
    #: Target queue -> whether it already existed (a dry run creates nothing).
    targets: dict[str, bool] = field(default_factory=dict)
    dry_run: bool = False
    moved: int = 0  # confirmed in a priority queue and acked on the old one
    new_rows: int = 0
    in_ledger: int = 0  # the task id already had a row: superseding copies, external reruns, drops
    dropped: int = 0  # duplicates of jobs already claimed or finished: acked, not moved
    unknown: Counter[str] = field(default_factory=Counter)  # moved without a ledger row, by task name
    left: int | None = None  # messages in the old queue at the end

    def count(self, moves: list[fifo_messages.Move]) -> None:
        for move in moves:
            self.moved += move.queue is not None or move.kind == fifo_messages.SCHEDULED
            self.new_rows += move.kind in (fifo_messages.NEW, fifo_messages.SCHEDULED)
            self.in_ledger += move.kind in (fifo_messages.SUPERSEDE, fifo_messages.EXTERNAL, fifo_messages.DROP)
            self.dropped += move.kind == fifo_messages.DROP
            if move.kind == fifo_messages.UNKNOWN:
                self.unknown[move.task_name] += 1


def target_queues() -> list[str]:
    """Where moved messages can go: the priority queue, and the reserved lane when it is on."""
    lane = [settings.LANE_QUEUE] if settings.LANE_MAX_PRIORITY is not None else []
    return [settings.QUEUE, *lane]


def migrate(
    source: str,
    *,
    batch_size: int = DEFAULT_BATCH,
    dry_run: bool = False,
    app: celery.Celery | None = None,
    before_ack: Callable[[Report], None] | None = None,
) -> Report:
    """Move every message of ``source`` (see the module docstring); ``dry_run`` only counts and checks.

    Raises :class:`Refused` before touching anything, :class:`Interrupted` when a batch could not
    be confirmed. ``before_ack`` is called after each batch is confirmed, before it is acked.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    targets = target_queues()
    if source in targets:
        raise Refused(f"--from {source!r} is a queueprio queue itself; move another queue into it")
    if not dry_run and transaction.get_connection().in_atomic_block:
        raise RuntimeError("migrate outside a transaction: ledger rows must be committed before publishing")
    app = app or celery.current_app
    report = Report(source, dry_run=dry_run)
    with app.connection_for_write(transport_options={"confirm_publish": False}) as conn:
        report.found, report.consumers = inspect_source(conn, source)
        report.targets = {name: check_target(conn, name) for name in targets}  # all checked before any change
        if dry_run:
            return report
        for name in targets:
            declare(conn, name)
        if report.consumers:
            logger.warning("migrate-queue: %s has %s consumers; what they take is not moved", source, report.consumers)
        move_all(conn, source, report, batch_size=batch_size, before_ack=before_ack)
        report.left = inspect_source(conn, source)[0]
    if report.unknown:
        logger.warning(
            "migrate-queue: moved %s messages of tasks that are not queueprio tasks, without ledger rows: %s",
            sum(report.unknown.values()),
            dict(report.unknown),
        )
    return report


def inspect_source(conn: Any, source: str) -> tuple[int, int]:
    """Messages and consumers of the old queue (a passive declare), or :class:`Refused` if it's missing."""
    channel = conn.channel()
    try:
        _, messages, consumers = channel.queue_declare(source, passive=True)
    except NotFound as exc:
        raise Refused(f"queue {source!r} does not exist (in this vhost)") from exc
    finally:
        _close(channel)
    return messages, consumers


def check_target(conn: Any, name: str) -> bool:
    """Does the priority queue ``name`` exist? :class:`Refused` if it does without ``x-max-priority``.

    Redeclaring with our arguments changes nothing on an equivalent queue and fails with 406
    PRECONDITION_FAILED on any other, so that is the check.
    """
    queue = priority_queue(name)
    channel = conn.channel()
    try:
        queue.bind(channel).queue_declare(passive=True)
    except NotFound:
        return False
    finally:
        _close(channel)
    channel = conn.channel()
    try:
        queue.bind(channel).queue_declare()
    except PreconditionFailed as exc:
        raise Refused(
            f"queue {name!r} exists without x-max-priority {AMQP_MAX_PRIORITY} ({exc.reply_text}); "
            "RabbitMQ can't change that: delete it, or move it too under another name"
        ) from exc
    finally:
        _close(channel)
    return True


def declare(conn: Any, name: str) -> None:
    """Declare the priority queue ``name`` with its exchange and binding (a no-op if it exists)."""
    channel = conn.channel()
    try:
        priority_queue(name).bind(channel).declare()
    finally:
        _close(channel)


def move_all(
    conn: Any, source: str, report: Report, *, batch_size: int, before_ack: Callable[[Report], None] | None
) -> None:
    """Take, plan, publish, confirm and ack batch after batch until the old queue is empty."""
    tasks = priority_tasks()
    taking, publishing = conn.channel(), conn.channel()
    tracker = ConfirmTracker(publishing)
    returned: list[str] = []  # a mandatory publish that reached no queue comes back before its ack
    publishing.events["basic_return"].add(lambda exc, exchange, routing_key, message: returned.append(routing_key))
    while messages := take(taking, source, batch_size):
        moves, rows = fifo_messages.plan(messages, tasks)
        Job.objects.bulk_create(rows)
        first = tracker.next_tag
        for move in moves:
            if move.queue is not None:
                publishing.basic_publish(move.outgoing(), exchange=move.queue, routing_key=move.queue, mandatory=True)
        tracker.wait(conn, float(settings.CONFIRM_TIMEOUT))
        if returned or not tracker.confirmed(first, tracker.next_tag):
            raise Interrupted(
                f"the broker did not confirm a batch of {len(messages)} (returned to: {sorted(set(returned))}); "
                "it stays in the old queue, run the command again",
                report,
            )
        fifo_messages.record_superseded(moves)
        if before_ack is not None:
            before_ack(report)
        taking.basic_ack(messages[-1].delivery_tag, multiple=True)
        report.count(moves)
        logger.info("migrate-queue: moved %s of %s from %s", report.moved, report.found, source)


def take(channel: Any, source: str, limit: int) -> list[Any]:
    """Up to ``limit`` unacknowledged messages from ``source``, oldest first."""
    messages: list[Any] = []
    while len(messages) < limit and (message := channel.basic_get(source, no_ack=False)) is not None:
        messages.append(message)
    return messages


def _close(channel: Any) -> None:
    with suppress(Exception):  # already closed by the broker's channel error
        channel.close()
