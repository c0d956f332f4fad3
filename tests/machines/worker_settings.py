"""Settings for the workers the many-machine tests start inside the test hosts.

The test suite's settings, plus: the broker as a failover list of the fixture's cluster nodes at
the host's gateway address (``QUEUEPRIO_MACHINES_BROKER``, each URL with its vhost), and a short
AMQP heartbeat, so that RabbitMQ notices a cut-off host within seconds (as a deployment would
with its own, longer, heartbeat) and hands its unacknowledged jobs to the other host.
"""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403

CELERY_BROKER_URL = os.environ["QUEUEPRIO_MACHINES_BROKER"]
CELERY_BROKER_HEARTBEAT = float(os.environ.get("QUEUEPRIO_MACHINES_HEARTBEAT", "4"))
CELERY_BROKER_CONNECTION_TIMEOUT = 4.0
