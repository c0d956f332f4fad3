"""queueprio's own periodic tasks, run by beat (django-celery-beat; entries in ``maintenance.schedule``).

Plain tasks, not ``PriorityTask``: they keep no ledger rows of their own. The router sends them
at the top AMQP priority (``queueprio_maintenance``), so a backlog can't starve the sweep that
prevents starvation. ``queueprio.tasks`` imports this module, so Celery's autodiscovery finds them.
``base=celery.Task`` is explicit: a project that makes ``PriorityTask`` its app's ``task_cls``
must not turn these into ledger jobs.
"""

from __future__ import annotations

from dataclasses import asdict

import celery
from django.utils import timezone

from ..observability import rollup
from . import aging, due, reconcile, retention


@celery.shared_task(name="queueprio.age_waiting_jobs", base=celery.Task, queueprio_maintenance=True, ignore_result=True)
def age_waiting_jobs() -> dict[str, int]:
    """Republish waiting jobs at a better priority (see ``queueprio.maintenance.aging``); also publish
    due delayed jobs and recover lapsed leases, in case no worker's own ticker is doing it."""
    due.release_due()
    due.recover_leases()
    return asdict(aging.sweep())


@celery.shared_task(name="queueprio.prune", base=celery.Task, queueprio_maintenance=True, ignore_result=True)
def prune() -> dict[str, int]:
    """Delete rejections and finished jobs past their retention (see ``queueprio.maintenance.retention``)."""
    return retention.prune()


@celery.shared_task(name="queueprio.reconcile", base=celery.Task, queueprio_maintenance=True, ignore_result=True)
def reconcile_bands() -> dict[str, int]:
    """Recompute band counters from the ledger; report and fix drift (see ``queueprio.maintenance.reconcile``)."""
    return {drift.band: drift.ledger - drift.counter for drift in reconcile.reconcile()}


@celery.shared_task(name="queueprio.rollup_metrics", base=celery.Task, queueprio_maintenance=True, ignore_result=True)
def rollup_metrics() -> dict[str, int]:
    """Roll the ledger up into per-minute metrics, sample queue depth, prune old metrics (every minute)."""
    return rollup.run(timezone.now())
