"""Recompute every band's queued counter from the ledger; report and fix drift.

The same as the periodic task ``queueprio.reconcile`` (every ``QUEUEPRIO_RECONCILE_INTERVAL_SECONDS``).
There is no read-only mode: each count is taken under its band's row lock, and fixing it then
costs nothing more.
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from ..maintenance.reconcile import reconcile

HELP = "recompute each band's queued counter from the ledger; report and fix any drift"


def add_arguments(parser: ArgumentParser) -> None:
    """No options."""


def handle(command: BaseCommand, **options: Any) -> None:
    drifts = reconcile()
    if not drifts:
        command.stdout.write("every band's counter equals the ledger")
    for drift in drifts:
        command.stdout.write(f"band {drift.band}: counter {drift.counter}, ledger {drift.ledger}: corrected")
