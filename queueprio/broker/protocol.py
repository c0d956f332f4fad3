"""What queueprio adds to a Celery message: header names and the AMQP priority of a copy.

A job can have several copies in the broker (aging, an admin's "set priority", recovery):
each carries the job's newest generation, and the worker's claim lets only one run
(``queueprio.worker``).
"""

from __future__ import annotations

from ..conf import settings
from ..priority import FIFO_AMQP_PRIORITY, to_amqp

#: Message header names queueprio sets on every message it publishes.
HEADER_PRIORITY = "qp_priority"
HEADER_GENERATION = "qp_generation"
HEADER_BAND = "qp_band"
#: For log lines on the worker side, without a database read: requested priority, and when
#: the job became eligible to run (epoch seconds).
HEADER_REQUESTED = "qp_requested"
HEADER_QUEUED_AT = "qp_queued_at"

#: Generation recorded for a message that came without one (published outside queueprio).
EXTERNAL_GENERATION = 0


def amqp_priority(priority: int) -> int:
    """The AMQP priority for a job, or one fixed value when queueprio is switched off."""
    return to_amqp(priority) if settings.ENABLED else FIFO_AMQP_PRIORITY
