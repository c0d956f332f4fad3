"""What moving a plain queue's message into queueprio means for it: read it, plan its copy, record it.

A message from a queue that queueprio never published to is a Celery protocol-2 message
(``headers`` carry ``id`` and ``task``; the body is ``[args, kwargs, embed]``). Each one is
planned as one :class:`Move`, by what the ledger already knows of its task id:

* **new** — a queueprio task with no row: a ledger row (state ``queued``, the task's default
  priority, source ``migrated``, no band) and a copy with generation 1.
* **supersede** — its row is ``queued`` (a re-run after a crash, so an earlier copy may already
  sit in the priority queue): a copy with the row's generation + 1, recorded on the row once
  confirmed. Whichever copy claims first runs; every other one is stale (``queueprio.worker``).
* **external** — its row is ``started`` by a worker that adopted the message outside queueprio
  (generation 0) and died: moved unchanged, so it is adopted and runs again, as it would have in
  the old queue.
* **drop** — its row is claimed or finished under queueprio: this message is a duplicate of a
  job that already ran or is running. Acked without being moved.
* **unknown** — not a registered queueprio task, or not a readable protocol-2 JSON message:
  moved unchanged at ``QUEUEPRIO_DEFAULT_PRIORITY``, without a ledger row.

Migrated jobs take **no band places** (``qp_band`` is empty): they were accepted before queueprio
existed, and counting a large backlog against a band's limit would refuse new submissions to
that band until it drained. The ledger-based depth views still show them, in the band their
priority falls in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amqp import Message
from django.db.models import F
from django.utils import timezone
from kombu.compression import decompress
from kombu.serialization import loads

from ..broker.message import StoredMessage, copy_headers
from ..broker.protocol import EXTERNAL_GENERATION, amqp_priority
from ..broker.queues import queue_for
from ..conf import settings
from ..models import Job, JobState, PrioritySource
from ..registry import AnyTask
from ..submission.jobs import new_job, resolve

NEW, SUPERSEDE, EXTERNAL, DROP, UNKNOWN = "new", "supersede", "external", "drop", "unknown"
#: A new row whose ``eta`` is ahead: recorded ``scheduled``, published by the due scheduler.
SCHEDULED = "scheduled"
#: The AMQP properties a moved message keeps (the rest are the broker's or set per copy).
KEPT_PROPERTIES = ("correlation_id", "reply_to")


@dataclass(frozen=True)
class Legacy:
    """The parts of a Celery protocol-2 message the ledger needs."""

    task_id: str
    task_name: str
    args: list[Any]
    kwargs: dict[str, Any]
    embed: dict[str, Any]


@dataclass
class Move:
    """One message taken from the old queue and what to do with it (``queue`` is None: drop it)."""

    kind: str
    message: Message
    task_name: str
    queue: str | None = None
    priority: int = 0
    headers: dict[str, Any] | None = None
    #: A superseded row: (task id, the generation this copy replaces), recorded once confirmed.
    supersedes: tuple[str, int] | None = None

    def outgoing(self) -> Message:
        """The copy to publish: the original body and properties, our headers and AMQP priority."""
        properties = {**self.message.properties, "priority": amqp_priority(self.priority)}
        properties["application_headers"] = self.headers if self.headers is not None else self.message.headers
        return Message(self.message.body, **properties)


def read(message: Message) -> Legacy | None:
    """The task a message carries, or ``None`` if it isn't a protocol-2 message with a JSON body."""
    headers = message.headers or {}
    task_id, name = headers.get("id"), headers.get("task")
    if not (isinstance(task_id, str) and isinstance(name, str)):
        return None
    try:
        body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
        if headers.get("compression"):
            body = decompress(body, headers["compression"])
        properties = message.properties
        args, kwargs, embed = loads(
            body,
            properties.get("content_type") or "",
            properties.get("content_encoding") or "",
            accept={"application/json"},
        )
    except Exception:  # undecodable, another serializer, another shape: move it untouched
        return None
    if not (isinstance(args, list) and isinstance(kwargs, dict) and isinstance(embed, dict | None)):
        return None
    return Legacy(task_id, name, args, kwargs, embed or {})


def target(priority: int) -> str:
    """The priority queue a job at ``priority`` goes to (the reserved lane when urgent enough)."""
    return queue_for(priority)


def plan(messages: list[Message], tasks: dict[str, AnyTask]) -> tuple[list[Move], list[Job]]:
    """A move for every message, and the new ledger rows to insert before anything is published."""
    legacies = [read(m) for m in messages]
    known = [legacy.task_id for legacy in legacies if legacy is not None and legacy.task_name in tasks]
    rows = {job.task_id: job for job in Job.objects.filter(task_id__in=known)}
    defaults: dict[str, tuple[int, str]] = {}  # resolved once per task and batch
    moves, new_rows = [], []
    for message, legacy in zip(messages, legacies, strict=True):
        task = tasks.get(legacy.task_name) if legacy is not None else None
        if legacy is None or task is None:
            name = legacy.task_name if legacy is not None else str((message.headers or {}).get("task", "?"))
            priority = settings.DEFAULT_PRIORITY
            moves.append(Move(UNKNOWN, message, name, target(priority), priority))
            continue
        row = rows.get(legacy.task_id)
        if row is None:
            if legacy.task_name not in defaults:
                defaults[legacy.task_name] = resolve(task, None)
            row = rows[legacy.task_id] = ledger_row(task, legacy, message, defaults[legacy.task_name][0])
            new_rows.append(row)
            if row.state == JobState.SCHEDULED:  # published by the due scheduler at its eta
                moves.append(Move(SCHEDULED, message, legacy.task_name))
            else:
                moves.append(copy_of(NEW, message, legacy, row))
        elif row.state == JobState.QUEUED:
            # The row held in memory moves on too, so a further copy in this batch supersedes this
            # one; a row inserted by this batch is simply inserted at the newest generation.
            row.generation += 1
            moves.append(copy_of(SUPERSEDE, message, legacy, row, supersedes=(row.task_id, row.generation - 1)))
        elif row.state == JobState.STARTED and row.claimed_generation == EXTERNAL_GENERATION:
            priority = row.effective_priority
            moves.append(Move(EXTERNAL, message, legacy.task_name, target(priority), priority))
        else:
            moves.append(Move(DROP, message, legacy.task_name))
    return moves, new_rows


def copy_of(
    kind: str, message: Message, legacy: Legacy, row: Job, *, supersedes: tuple[str, int] | None = None
) -> Move:
    """A copy carrying queueprio's headers for ``row``'s newest generation."""
    priority = row.effective_priority
    headers = copy_headers(
        stored_from(message),
        generation=row.generation,
        priority=priority,
        requested=row.requested_priority,
        queued_at=row.queued_at.timestamp(),
        token=row.token,
    )
    return Move(kind, message, legacy.task_name, target(priority), priority, headers, supersedes)


def ledger_row(task: AnyTask, legacy: Legacy, message: Message, priority: int) -> Job:
    """An unsaved ``queued`` row at ``priority`` that can republish the job as the message describes it."""
    # The row keeps the original message whole: its copies carry the chain, chord and links.
    return new_job(
        task,
        stored_from(message),
        args=legacy.args,
        kwargs=legacy.kwargs,
        priority=priority,
        source=PrioritySource.MIGRATED,
    )


def stored_from(message: Message) -> StoredMessage:
    """A moved message as the ledger keeps a job's message, routed to queueprio's queue."""
    properties = dict(message.properties)
    body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    return StoredMessage(
        body=body,
        content_type=str(properties.pop("content_type", "application/json")),
        content_encoding=str(properties.pop("content_encoding", "utf-8")),
        headers={k: v for k, v in (message.headers or {}).items() if not k.startswith("qp_")},
        properties={k: v for k, v in properties.items() if k in KEPT_PROPERTIES},
        exchange=settings.QUEUE,
        routing_key=settings.QUEUE,
        queue=settings.QUEUE,  # so every copy follows the job's priority, like a submitted job's
        delivery_mode=properties.get("delivery_mode"),
    )


def record_superseded(moves: list[Move]) -> None:
    """Move superseded rows to the generation of their confirmed copy (if still queued at the old one);
    the moved message becomes the one the row republishes from."""
    now = timezone.now()
    for move in moves:
        if move.supersedes is not None:
            task_id, old = move.supersedes
            stored = stored_from(move.message)
            Job.objects.filter(task_id=task_id, state=JobState.QUEUED, generation=old).update(
                generation=F("generation") + 1,
                published_at=now,
                message_body=stored.body,
                message_meta=stored.meta_text(),
            )
