"""Progress of a set of conversion jobs, as plain text: a bar while they run, a summary after."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Ledger states after which a job will not change any more (``queueprio.models.FINISHED_STATES``).
FINAL_STATES = frozenset(
    {"succeeded", "failed", "publish_failed", "cancelled", "expired", "ignored", "rejected", "replaced"}
)
#: Final states that are neither a success nor a failure, each counted under its own label.
OTHER_ENDINGS = {
    "cancelled": "cancelled",
    "expired": "expired",
    "ignored": "ignored",
    "rejected": "rejected by the task",
    "replaced": "replaced",
}


@dataclass(frozen=True)
class JobView:
    """What the command knows of one job: its id, the file it converts, state, error and output file."""

    task_id: str
    source: str
    state: str
    error: str = ""
    target: str = ""

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


def summary(jobs: Sequence[JobView], *, refused: Sequence[str] = ()) -> list[str]:
    """Closing lines: counts, then each output file, each failure with its reason, each refused file."""
    counts = tally(jobs)
    lines = [f"succeeded: {counts['succeeded']}", f"failed: {counts['failed'] + counts['publish_failed']}"]
    lines += [f"{label}: {counts[state]}" for state, label in OTHER_ENDINGS.items() if counts[state]]
    lines.append(f"refused: {len(refused)}")
    for job in jobs:
        if job.state == "succeeded" and job.target:
            lines.append(f"  ok {job.source} -> {job.target}")
    for job in jobs:
        if job.state in ("failed", "publish_failed"):
            lines.append(f"  failed {job.source} ({job.task_id}): {job.reason}")
        elif job.state in OTHER_ENDINGS:
            lines.append(f"  {OTHER_ENDINGS[job.state]} {job.source} ({job.task_id})")
    lines.extend(f"  refused {reason}" for reason in refused)
    return lines


def all_final(jobs: Iterable[JobView]) -> bool:
    return all(job.state in FINAL_STATES for job in jobs)
