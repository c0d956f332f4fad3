"""What the demo's ledger rows show: each urgent job's wait against the bulk jobs', and the verdict.

Pure functions of the jobs as ``queueprio.jobs()`` returns them: nothing here is fixed text.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


def seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else max(0.0, (end - start).total_seconds())


def waited(job: Any) -> float | None:
    return seconds(job.queued_at, job.started_at)


def ran(job: Any) -> float | None:
    return seconds(job.started_at, job.finished_at)


@dataclass(frozen=True)
class Urgent:
    """One urgent job, and the bulk jobs that were waiting when it was submitted."""

    label: str
    job: Any
    #: Bulk jobs submitted before it and not yet started when it was submitted.
    waiting: int
    #: Of those, how many it started ahead of.
    ahead_of: int

    @property
    def started_first(self) -> int:
        """Waiting bulk jobs that started before it anyway."""
        return self.waiting - self.ahead_of


def against_bulk(label: str, urgent: Any, bulk: Sequence[Any]) -> Urgent:
    waiting = [
        b for b in bulk if b.queued_at <= urgent.queued_at and (b.started_at is None or b.started_at > urgent.queued_at)
    ]
    ahead = [
        b
        for b in waiting
        if urgent.started_at is not None and (b.started_at is None or b.started_at > urgent.started_at)
    ]
    return Urgent(label, urgent, len(waiting), len(ahead))


def ahead_text(row: Urgent) -> str:
    if not row.waiting:
        return "– (none waiting)"
    text = f"{row.ahead_of} of {row.waiting}"
    return f"{text} ({row.started_first} already taken)" if row.started_first else text


@dataclass(frozen=True)
class Verdict:
    shown: bool
    lines: list[str]


def verdict(rows: Sequence[Urgent], bulk: Sequence[Any], *, processes: int) -> Verdict:
    """Preemption is shown when every urgent job arrived while bulk jobs waited and started ahead of
    all of them but at most one per worker process.

    Those few are not overtaking: with prefetch 1 each worker process holds at most one message
    it hasn't started, and one taken just before the urgent job was published (or whose start
    waited for the submission's transaction to release the database) starts first under any
    scheduler. FIFO would run every waiting bulk job first."""
    tested = [row for row in rows if row.waiting]
    if not tested:
        return Verdict(False, ["not shown: no urgent job arrived while bulk jobs were waiting (the backlog ran out)"])
    overtaken = [row for row in tested if row.started_first > processes]
    taken = sum(row.started_first for row in tested)
    urgent_waits = [w for row in tested if (w := waited(row.job)) is not None]
    overtook = {id(b) for row in tested for b in bulk if b.queued_at <= row.job.queued_at}
    bulk_waits = [w for b in bulk if id(b) in overtook and (w := waited(b)) is not None]
    numbers = (
        f"urgent jobs waited {fmt(min(urgent_waits))}–{fmt(max(urgent_waits))}; the bulk jobs queued before them "
        f"waited {fmt(statistics.median(bulk_waits))} at the median, {fmt(max(bulk_waits))} at most"
        if urgent_waits and bulk_waits
        else "some jobs did not start"
    )
    if overtaken:
        names = ", ".join(f"{row.label} (after {row.started_first} of {row.waiting})" for row in overtaken)
        return Verdict(False, [f"NOT shown: bulk jobs that were waiting started before {names}", numbers])
    untested = [row.label for row in rows if not row.waiting]
    lines = [
        f"PREEMPTED: each of the {len(tested)} urgent jobs started ahead of every bulk job waiting when it arrived",
        numbers,
    ]
    if taken:
        lines[0] = (
            f"PREEMPTED: each of the {len(tested)} urgent jobs started ahead of every bulk job waiting when it "
            f"arrived, but {taken} a worker process had already taken (at most one per process can be)"
        )
    if untested:
        lines.append(f"({', '.join(untested)} arrived after the backlog had drained: not counted)")
    return Verdict(True, lines)


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} s"


def offset(job: Any, t0: datetime) -> str:
    return f"+{(job.queued_at - t0).total_seconds():.1f} s"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, right: Sequence[int] = ()) -> list[str]:
    """Columns padded to their widest cell; those in ``right`` right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    return [line(cells[0]).rstrip(), "  ".join("-" * w for w in widths), *(line(row).rstrip() for row in cells[1:])]


def priority(job: Any) -> str:
    requested, effective = job.requested_priority, job.effective_priority
    return str(requested) if requested == effective else f"{requested}→{effective}"


def report(
    t0: datetime, urgent: Sequence[Urgent], bulk: Sequence[Any], refused: Sequence[tuple[str, float, str]]
) -> list[str]:
    """The compact table: each urgent job, the bulk backlog in one row, each refused batch
    (``(label, seconds after t0, reason)``), then the refusals' reasons."""
    rows: list[list[object]] = [
        [
            row.label,
            priority(row.job),
            offset(row.job, t0),
            fmt(waited(row.job)),
            fmt(ran(row.job)),
            ahead_text(row),
        ]
        for row in urgent
    ]
    bulk_waits = sorted(w for b in bulk if (w := waited(b)) is not None)
    bulk_runs = sorted(r for b in bulk if (r := ran(b)) is not None)
    best = min((b.effective_priority for b in bulk), default=None)
    if bulk:
        rows.append(
            [
                f"bulk ×{len(bulk)}",
                f"{bulk[0].requested_priority}"
                + (f"→{best} at best" if best is not None and best < bulk[0].requested_priority else ""),
                offset(max(bulk, key=lambda b: b.queued_at), t0),
                f"median {fmt(statistics.median(bulk_waits))}, max {fmt(bulk_waits[-1])}" if bulk_waits else "–",
                f"median {fmt(statistics.median(bulk_runs))}" if bulk_runs else "–",
                "",
            ]
        )
    rows += [[label, "", f"+{at:.1f} s", "refused", "", ""] for label, at, _ in refused]
    lines = table(
        ["job", "priority", "submitted", "waited", "ran", "waiting bulk jobs it started ahead of"],
        rows,
        right=(2, 3, 4),
    )
    return lines + [""] + [f"{label} refused: {reason}" for label, _, reason in refused] if refused else lines
