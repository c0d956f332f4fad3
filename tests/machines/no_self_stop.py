"""The control for the partition scenario, imported by a worker through ``QUEUEPRIO_EXTRA_TASK_MODULES``:
a run that can't renew its lease logs it but goes on (``queueprio.worker.lease.stop`` made a no-op)."""

from __future__ import annotations

import logging

from queueprio.worker import lease

logger = logging.getLogger("queueprio")


def _keep_running(task_id: str, why: str) -> None:
    logger.critical("control: not stopping task_id=%s: %s", task_id, why)


lease.stop = _keep_running
