"""The Celery message a job runs from: built once by Celery, kept in the ledger, copied.

Celery builds a task message from a call (protocol 2: headers, properties, and a body of
``(args, kwargs, embed)`` whose ``embed`` carries the canvas: callbacks, errbacks, chain, chord).
queueprio lets Celery build it exactly as ``apply_async`` would — its argument checks and errors,
routing, options, stamps, ``before_task_publish`` receivers — but :func:`capture` takes the message
instead of sending it, and encodes the body with the task's serializer, so whatever that serializer
carries round-trips (bytes, dates, decimals, UUIDs, pydantic models...). The ledger stores it
(:meth:`StoredMessage.meta_text` and the body bytes).

Every copy of a job — the first, an aging step, an admin's priority change, a retry, a recovery —
is that message with only queueprio's headers, the AMQP priority and the queue changed
(:func:`copy_headers`, ``broker.publish``). A chain, a chord, a ``link``, a stamp or a caller's own
header survives every republish. Two things are deliberately dropped from every copy: the ``eta``
(delayed jobs wait in the ledger, not in a worker's memory) and the ``expiration`` property Celery
derives from ``expires`` (RabbitMQ would drop an expired copy silently; the worker drops it and
records it instead, see ``queueprio.worker``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from kombu import Exchange
from kombu.utils import json

from .flower import display_repr
from .protocol import QUEUEPRIO_HEADERS

#: ``producer.publish`` arguments that are not message properties.
_PUBLISH_ARGS = frozenset(
    {
        "exchange",
        "routing_key",
        "serializer",
        "compression",
        "retry",
        "retry_policy",
        "declare",
        "headers",
        "timeout",
        "confirm_timeout",
        "delivery_mode",
        "priority",
        "mandatory",
        "immediate",
        # Celery turns ``expires`` into a message TTL; queueprio enforces ``expires`` itself.
        "expiration",
    }
)


@dataclass(frozen=True)
class StoredMessage:
    """A Celery task message as the ledger keeps it."""

    body: bytes
    content_type: str
    content_encoding: str
    headers: dict[str, Any]
    properties: dict[str, Any]
    exchange: str
    routing_key: str
    #: The queue Celery routed the first copy to.
    queue: str
    delivery_mode: int | None = None
    #: The fields of Celery's ``task-sent`` event, when the app sends one.
    sent_event: dict[str, Any] | None = None

    def meta_text(self) -> str:
        """Everything but the body, as kombu's JSON (which keeps datetimes, bytes, UUIDs and decimals)."""
        meta = {
            "content_type": self.content_type,
            "content_encoding": self.content_encoding,
            "headers": self.headers,
            "properties": self.properties,
            "exchange": self.exchange,
            "routing_key": self.routing_key,
            "queue": self.queue,
            "delivery_mode": self.delivery_mode,
            "sent_event": self.sent_event,
        }
        return str(json.dumps(meta))

    @classmethod
    def from_ledger(cls, body: bytes | memoryview, meta_text: str) -> StoredMessage:
        meta = json.loads(meta_text)
        return cls(body=bytes(body), **meta)

    def with_headers(self, **changes: Any) -> StoredMessage:
        """The same message with some headers set (time limits chosen at admission, say)."""
        return replace(self, headers={**self.headers, **changes})

    @property
    def task_id(self) -> str:
        return str(self.headers["id"])


@dataclass
class _Captured:
    messages: list[StoredMessage] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


class CapturingProducer:
    """Stands in for a kombu ``Producer`` in Celery's ``send_task``: takes the message, sends nothing.

    Everything but ``publish`` is the real producer's (Celery's result backend may declare a reply
    queue on its channel before the message is built, as it would for a real send).
    """

    def __init__(self, producer: Any) -> None:
        self._real = producer
        self._captured = _Captured()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def publish(self, body: Any, **kwargs: Any) -> None:
        headers = dict(kwargs.get("headers") or {})
        # The real producer's own encoding step: the task's serializer, then its compression.
        data, content_type, content_encoding = self._real._prepare(
            body, kwargs.get("serializer"), None, None, kwargs.get("compression"), headers
        )
        exchange = kwargs.get("exchange") or ""
        exchange = exchange.name if isinstance(exchange, Exchange) else str(exchange)
        routing_key = str(kwargs.get("routing_key") or "")
        queue = _queue_of(exchange, routing_key, kwargs.get("declare") or [])
        if isinstance(data, str):  # kombu's JSON and YAML serializers hand back text
            data = data.encode(content_encoding or "utf-8")
        self._captured.messages.append(
            StoredMessage(
                body=bytes(data),
                content_type=str(content_type),
                content_encoding=str(content_encoding),
                headers=headers,
                properties={k: v for k, v in kwargs.items() if k not in _PUBLISH_ARGS and v is not None},
                exchange=exchange,
                routing_key=routing_key,
                queue=str(queue),
                delivery_mode=kwargs.get("delivery_mode"),
            )
        )

    def take(self) -> StoredMessage:
        """The one message Celery handed over (with its task-sent event's fields, if any)."""
        (message,) = self._captured.messages
        self._captured.messages.clear()
        event = self._captured.events.pop() if self._captured.events else None
        return replace(message, sent_event=event)


def _queue_of(exchange: str, routing_key: str, declare: list[Any]) -> str:
    """The queue a message was routed to, or ``""`` when the caller chose an exchange of their own."""
    if exchange == "":
        return routing_key  # the default exchange routes by queue name
    for queue in declare:
        bound = getattr(queue, "exchange", None)
        if getattr(bound, "name", None) == exchange and (queue.routing_key or queue.name) == routing_key:
            return str(queue.name)
    return ""


class CapturingEvents:
    """Stands in for Celery's event dispatcher during a capture: keeps the task-sent event's fields."""

    def __init__(self, captured: _Captured) -> None:
        self._captured = captured

    def publish(self, type: str, fields: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        self._captured.events.append(dict(fields))


@contextmanager
def capturing(producer: Any) -> Iterator[tuple[CapturingProducer, CapturingEvents]]:
    """A producer and an event dispatcher to pass to Celery's ``apply_async`` to capture its message."""
    capture = CapturingProducer(producer)
    yield capture, CapturingEvents(capture._captured)


def strip_queueprio_headers(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` without headers queueprio sets per copy (a retry or a replace inherits the
    running copy's headers through Celery's ``signature_from_request``)."""
    headers = options.get("headers")
    if headers:
        options = {**options, "headers": {k: v for k, v in headers.items() if k not in QUEUEPRIO_HEADERS}}
    return options


def copy_headers(
    message: StoredMessage,
    *,
    generation: int,
    priority: int,
    requested: int,
    queued_at: float,
    token: str,
) -> dict[str, Any]:
    """The headers of copy ``generation``: the message's own, queueprio's, and no ``eta``."""
    return {
        **message.headers,
        "eta": None,
        # What Flower shows and searches (``queueprio.broker.flower``); the body is unchanged.
        "kwargsrepr": display_repr(message.headers.get("kwargsrepr"), priority, requested=requested),
        "qp_priority": priority,
        "qp_generation": generation,
        "qp_requested": requested,
        "qp_queued_at": queued_at,
        "qp_token": token,
    }


@dataclass(frozen=True)
class Followup:
    """What a running job asked to happen to itself once its run ends.

    Celery's ``retry()`` and ``replace()`` send the job's task id again from inside the run. The
    message is built then (``capture``), but the row can't change before the run ends: the body
    may be inside ``transaction.atomic()``, whose rollback would take the row's change with it
    while the message stood. So the run records the followup on its request, and the worker
    applies it after the body returned or raised (``queueprio.worker.followup``).
    """

    #: ``"retry"`` or ``"replace"``.
    kind: str
    message: StoredMessage
    task_name: str
    args: list[Any]
    kwargs: dict[str, Any]
    priority: int


#: The attribute of Celery's task request that carries a :class:`Followup`.
FOLLOWUP = "queueprio_followup"
#: Set on the request by ``PriorityTask.on_replace``: the run handed its task id on.
REPLACED = "queueprio_replaced"


def header_time(value: Any) -> datetime | None:
    """A Celery ``eta``/``expires`` header (ISO 8601, made absolute by Celery) as an aware datetime."""
    if value is None or value == "":
        return None
    when = value if isinstance(value, datetime) else parse_datetime(str(value))
    if when is not None and timezone.is_naive(when):
        when = timezone.make_aware(when, timezone.get_default_timezone())
    return when
