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
    #: A running job's progress (0–1) and note, as it reports them (``queueprio.progress``).
    progress: float | None = None
    note: str = ""
    #: A queued job's place (jobs ahead of it) and expected start in seconds (asked with ``--detail``).
    ahead: int | None = None
    starts_in: float | None = None

    @property
    def reason(self) -> str:
        """The first line of the error: the cause, without the traceback."""
        return self.error.strip().splitlines()[0] if self.error.strip() else "no error recorded"


def tally(jobs: Iterable[JobView]) -> Counter[str]:
    return Counter(job.state for job in jobs)


def progress_line(counts: Counter[str], total: int, *, width: int = 30, running: float = 0.0) -> str:
    """``[##########----------]  5/10 done  4 ok  1 failed  3 running  2 queued``.

    ``running``: the running jobs' progress summed (each 0–1), so the bar moves while they run."""
    done = sum(counts[state] for state in FINAL_STATES)
    filled = min(width, round(width * (done + running) / total)) if total else width
    parts = [f"[{'#' * filled}{'-' * (width - filled)}]", f"{done}/{total} done", f"{counts['succeeded']} ok"]
    for state, label in (("failed", "failed"), ("started", "running"), ("queued", "queued")):
        if counts[state]:
            parts.append(f"{counts[state]} {label}")
    return "  ".join(parts)


def running_share(jobs: Iterable[JobView]) -> float:
    """The running jobs' reported progress, summed (a job reporting none counts 0)."""
    return sum(job.progress or 0.0 for job in jobs if job.state == "started")


def bar(fraction: float, width: int = 20) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return f"[{'#' * filled}{'-' * (width - filled)}] {fraction * 100:3.0f}%"


def detail_lines(jobs: Sequence[JobView], *, limit: int = 20) -> list[str]:
    """One line per unfinished job: a running one's bar and note, a waiting one's place and expected start."""
    unfinished = [job for job in jobs if job.state not in FINAL_STATES]
    lines = []
    for job in unfinished[:limit]:
        if job.state == "started":
            shown = bar(job.progress) if job.progress is not None else "running"
            lines.append(f"  {job.source}  {shown}" + (f"  {job.note}" if job.note else ""))
            continue
        where = job.state
        if job.ahead is not None:
            where += f", {job.ahead} ahead"
        if job.starts_in is not None:
            where += f", expected to start in {_seconds(job.starts_in)}"
        lines.append(f"  {job.source}  {where}")
    if len(unfinished) > limit:
        lines.append(f"  … and {len(unfinished) - limit} more")
    return lines


def _seconds(value: float) -> str:
    if value < 60:
        return f"{value:.0f} s"
    minutes, secs = divmod(round(value), 60)
    return f"{minutes}m {secs:02d}s" if minutes < 60 else f"{minutes // 60}h {minutes % 60:02d}m"


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
