"""Progress of a set of conversion jobs, as plain text: a bar while they run, a summary after."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Ledger states after which a job will not change any more.
FINAL_STATES = frozenset({"succeeded", "failed", "publish_failed", "cancelled"})


@dataclass(frozen=True)
class JobView:
    """What the command knows of one job: its id, the file it converts, state and error."""

    task_id: str
    source: str
    state: str
    error: str = ""

    @property
    def reason(self) -> str:
        """The first line of the error: the cause, without the traceback."""
        return self.error.strip().splitlines()[0] if self.error.strip() else "no error recorded"


def tally(jobs: Iterable[JobView]) -> Counter[str]:
    return Counter(job.state for job in jobs)


def progress_line(counts: Counter[str], total: int, *, width: int = 30) -> str:
    """``[##########----------]  5/10 done  4 ok  1 failed  3 running  2 queued``."""
    done = sum(counts[state] for state in FINAL_STATES)
    filled = round(width * done / total) if total else width
    parts = [f"[{'#' * filled}{'-' * (width - filled)}]", f"{done}/{total} done", f"{counts['succeeded']} ok"]
    for state, label in (("failed", "failed"), ("started", "running"), ("queued", "queued")):
        if counts[state]:
            parts.append(f"{counts[state]} {label}")
    return "  ".join(parts)


def summary(jobs: Sequence[JobView], *, rejected: Sequence[str] = ()) -> list[str]:
    """Closing lines: counts, then each failure with its reason, then each refused file."""
    counts = tally(jobs)
    lines = [f"succeeded: {counts['succeeded']}", f"failed: {counts['failed'] + counts['publish_failed']}"]
    if counts["cancelled"]:
        lines.append(f"cancelled: {counts['cancelled']}")
    lines.append(f"rejected: {len(rejected)}")
    for job in jobs:
        if job.state in ("failed", "publish_failed"):
            lines.append(f"  failed {job.source} ({job.task_id}): {job.reason}")
    lines.extend(f"  rejected {reason}" for reason in rejected)
    return lines


def all_final(jobs: Iterable[JobView]) -> bool:
    return all(job.state in FINAL_STATES for job in jobs)
