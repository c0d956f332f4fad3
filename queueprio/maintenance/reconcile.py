"""The books balance: each band's admission counter recomputed from the ledger, drift reported and fixed.

``Band.queued`` is a counter (admission needs one statement, not a count of the band's rows). Every
transition that moves a job in or out of ``queued`` moves its band's counter in the same
transaction, by the band's key. This is the check that it stays true: a periodic task
(``queueprio.reconcile``) and ``manage.py queueprio reconcile`` count each band's queued rows,
under the band's row lock, and set the counter to that count. A difference is drift: logged as a
warning, added to ``Band.corrections`` (exported to Prometheus), and fixed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction

from ..models import WAITING_STATES, Band, Job, JobState

logger = logging.getLogger("queueprio")


@dataclass(frozen=True)
class Drift:
    band: str
    counter: int
    ledger: int


def reconcile() -> list[Drift]:
    """Set every band's counter to its queued rows; returns the bands that had drifted."""
    drifts = []
    for band_id in Band.objects.values_list("pk", flat=True):
        drift = _reconcile_band(band_id)
        if drift is not None:
            drifts.append(drift)
    return drifts


def _reconcile_band(band_id: int) -> Drift | None:
    with transaction.atomic():
        # The row lock waits for every transaction that moves this counter (they all update the
        # band row), so the count below, a new statement, sees what they committed.
        band = Band.objects.select_for_update().filter(pk=band_id).first()
        if band is None:
            return None
        ledger = Job.objects.filter(band_id=band_id, state__in=WAITING_STATES).count()
        running = Job.objects.filter(band_id=band_id, state=JobState.STARTED).count()
        if (ledger, running) == (band.queued, band.running):
            return None
        drift = abs(ledger - band.queued) + abs(running - band.running)
        Band.objects.filter(pk=band_id).update(queued=ledger, running=running, corrections=band.corrections + drift)
    logger.warning(
        "band counter drift band=%s queued=%s->%s running=%s->%s: corrected",
        band.name,
        band.queued,
        ledger,
        band.running,
        running,
    )
    return Drift(band.name, band.queued, ledger)
