"""What queueprio adds to a Celery message: header names and the AMQP priority of a copy.

A job can have several copies in the broker (aging, an admin's "set priority", recovery):
each carries the job's newest generation, and the worker's claim lets only one run
(``queueprio.worker``).
"""

from __future__ import annotations

from ..conf import settings
from ..priority import FIFO_AMQP_PRIORITY, to_amqp

#: Message header names queueprio sets on every copy it publishes. Only the generation and the
#: token decide anything (the claim); the rest are for log lines and Flower, so the worker needs
#: no database read to say what it runs. Band, priority and state come from the ledger, never
#: from a message.
HEADER_PRIORITY = "qp_priority"
HEADER_GENERATION = "qp_generation"
HEADER_TOKEN = "qp_token"  # noqa: S105  (a header name, not a secret)
#: Requested priority, and when the job became eligible to run (epoch seconds).
HEADER_REQUESTED = "qp_requested"
HEADER_QUEUED_AT = "qp_queued_at"
#: Set by earlier versions; ignored, and stripped from what a copy inherits.
HEADER_BAND = "qp_band"

QUEUEPRIO_HEADERS = frozenset(
    {HEADER_PRIORITY, HEADER_GENERATION, HEADER_TOKEN, HEADER_REQUESTED, HEADER_QUEUED_AT, HEADER_BAND}
)

#: Generation recorded for a message that came without one (published outside queueprio).
EXTERNAL_GENERATION = 0


def amqp_priority(priority: int) -> int:
    """The AMQP priority for a job, or one fixed value when queueprio is switched off."""
    return to_amqp(priority) if settings.ENABLED else FIFO_AMQP_PRIORITY
