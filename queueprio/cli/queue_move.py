"""Move every message of an existing plain (FIFO) queue into queueprio's priority queue, without loss.

Each message is acked on the old queue only after the broker confirmed its copy in the
priority queue. Queueprio tasks get a ledger row at their default priority; other tasks are
moved at QUEUEPRIO_DEFAULT_PRIORITY without one. Safe to run again after an interruption.
--dry-run changes nothing: it checks the queues and counts the old queue's messages.
"""

from __future__ import annotations

import argparse
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ..conf import settings
from ..operations.queue_move import DEFAULT_BATCH, Interrupted, Refused, Report, migrate

HELP = "move an existing FIFO queue's messages into the priority queue (--dry-run only checks and counts)"


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("--from", dest="source", required=True, metavar="QUEUE", help="the queue to empty")
    parser.add_argument("--dry-run", action="store_true", help="check the queues and count; move nothing")
    parser.add_argument(
        "--batch",
        type=positive,
        default=DEFAULT_BATCH,
        metavar="N",
        help=f"messages taken, confirmed and acked together (default {DEFAULT_BATCH})",
    )


def render(report: Report) -> str:
    targets = ", ".join(f"{name} ({'exists' if existed else 'created'})" for name, existed in report.targets.items())
    if report.dry_run:
        targets = ", ".join(
            f"{name} ({'exists, x-max-priority ok' if existed else 'would be created'})"
            for name, existed in report.targets.items()
        )
        return "\n".join(
            [
                f"dry run: nothing moved. {report.source}: {report.found} messages, {report.consumers} consumers",
                f"target: {targets}",
            ]
        )
    unknown = sum(report.unknown.values())
    lines = [
        f"{report.source} -> {targets}",
        f"moved: {report.moved}",
        f"  new ledger rows: {report.new_rows}",
        f"  already in the ledger: {report.in_ledger} (dropped as duplicates of jobs already run: {report.dropped})",
        f"  not queueprio tasks, no ledger row, priority {settings.DEFAULT_PRIORITY}: {unknown}",
        f"left in {report.source}: {report.left if report.left is not None else '?'}",
    ]
    return "\n".join(lines)


def warnings(report: Report) -> list[str]:
    found = []
    if report.consumers:
        found.append(
            f"warning: {report.source} had {report.consumers} consumer(s): messages they take are run "
            "by them, not moved. Stop the old workers first."
        )
    if report.unknown:
        names = ", ".join(f"{name} ({count})" for name, count in report.unknown.most_common())
        found.append(f"warning: moved without a ledger row (not registered as queueprio tasks here): {names}")
    return found


def handle(command: BaseCommand, **options: Any) -> None:
    try:
        report = migrate(options["source"], batch_size=options["batch"], dry_run=options["dry_run"])
    except Refused as exc:
        raise CommandError(str(exc)) from exc
    except Interrupted as exc:
        command.stdout.write(render(exc.report))
        raise CommandError(str(exc)) from exc
    command.stdout.write(render(report))
    for line in warnings(report):
        command.stderr.write(line)
