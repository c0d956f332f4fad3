"""Show queued jobs by priority and band, what runs (with its progress) and what starts next, the
workers that answer, and last hour's p95 wait.

Depth, band counters, running jobs and the next to start are read live from the ledger; the p95
comes from the metrics rollup and lags by a minute or two.
"""

from __future__ import annotations

import json
import time
from argparse import ArgumentParser
from datetime import datetime, timedelta
from typing import Any

import celery
from django.core.management.base import BaseCommand
from django.utils import timezone

from ..observability import depth, health, live, window
from ..observability.capacity import processes_by_queue
from ..observability.position import next_to_start
from ..observability.units import format_duration
from .table import format_table

HELP = (
    "queue depth by priority, bands (waiting, held, running), running jobs with progress, the next to "
    "start with expected start, workers, last hour's p95 wait "
    "(--watch to keep it on screen, --json for scripts)"
)
WINDOW = timedelta(hours=1)
#: Running jobs and next-to-start jobs listed.
SHOWN = 10
#: Cursor home, then clear the screen: the next frame replaces the last one.
CLEAR = "\x1b[H\x1b[2J"


def positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(text)
    return value


def add_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument(
        "--watch",
        action="store_true",
        help="refresh in place until Ctrl-C (with --json: one JSON object per line and refresh)",
    )
    parser.add_argument(
        "--interval",
        type=positive_seconds,
        default=2.0,
        metavar="SECONDS",
        help="seconds between refreshes with --watch (default 2; each refresh also waits for the worker ping)",
    )


def gather(now: datetime, app: celery.Celery) -> dict[str, Any]:
    """Everything the status shows, as JSON-ready data (seconds as floats, ``None`` for none)."""
    hour = window.by_priority(now - WINDOW)
    priorities = []
    for q in depth.by_priority(now):
        stat = hour.get(int(q.name))
        priorities.append(
            {
                "priority": int(q.name),
                "queued": q.queued,
                "oldest_wait_seconds": q.oldest_wait(now),
                "p95_wait_seconds": window.wait_quantiles(stat, (0.95,))[0.95] if stat else None,
                "started_last_hour": stat.counts["started"] if stat else 0,
            }
        )
    load = {b.name: b for b in live.band_load()}
    bands = [
        {
            "band": q.name,
            "queued": q.queued,
            "held": load[q.name].held if q.name in load else 0,
            "running": load[q.name].running if q.name in load else 0,
            "max_running": load[q.name].max_running if q.name in load else None,
            "oldest_wait_seconds": q.oldest_wait(now),
        }
        for q in depth.by_band(now)
    ]
    running = [
        {
            "task_id": r.task_id,
            "task": r.task_name,
            "priority": r.effective_priority,
            "worker": r.worker,
            "running_seconds": r.elapsed(now),
            "progress": r.progress,
            "progress_note": r.progress_note,
        }
        for r in live.running(SHOWN)
    ]
    upcoming = [
        {
            "task_id": n.job.task_id,
            "task": n.job.task_name,
            "priority": n.job.effective_priority,
            "position": n.position,
            "starts_in_seconds": None
            if n.expected_start is None
            else max(0.0, (n.expected_start - now).total_seconds()),
        }
        for n in next_to_start(now, limit=SHOWN, workers_by_queue=processes_by_queue(app))
    ]
    return {
        "at": now.isoformat(),
        "priorities": priorities,
        "bands": bands,
        "running": running,
        "next": upcoming,
        "workers": health.responding_workers(app),
    }


def progress_bar(progress: float | None, note: str, width: int = 20) -> str:
    """``[#######.............]  35% rows 3500/10000``; ``–`` when the job reports none."""
    if progress is None:
        return note or "–"
    filled = round(max(0.0, min(1.0, progress)) * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {progress * 100:3.0f}%" + (f" {note}" if note else "")


def render(data: dict[str, Any]) -> str:
    """The tables a person reads."""
    priorities = format_table(
        ["priority", "queued", "oldest wait", "p95 wait (1h)", "started (1h)"],
        [
            (
                p["priority"],
                p["queued"],
                format_duration(p["oldest_wait_seconds"]),
                format_duration(p["p95_wait_seconds"]),
                p["started_last_hour"],
            )
            for p in data["priorities"]
        ],
        right=(0, 1, 2, 3, 4),
    )
    bands = format_table(
        ["band", "queued", "held", "running", "oldest wait"],
        [
            (
                b["band"],
                b["queued"],
                b["held"],
                f"{b['running']}" + (f" / {b['max_running']}" if b["max_running"] is not None else ""),
                format_duration(b["oldest_wait_seconds"]),
            )
            for b in data["bands"]
        ],
        right=(1, 2, 3, 4),
    )
    running = format_table(
        ["running", "priority", "for", "progress"],
        [
            (
                f"{r['task']} {r['task_id'][:8]}",
                r["priority"],
                format_duration(r["running_seconds"]),
                progress_bar(r["progress"], r["progress_note"]),
            )
            for r in data["running"]
        ],
        right=(1, 2),
    )
    upcoming = format_table(
        ["next to start", "priority", "ahead", "expected in"],
        [
            (
                f"{n['task']} {n['task_id'][:8]}",
                n["priority"],
                n["position"],
                "no worker" if n["starts_in_seconds"] is None else format_duration(n["starts_in_seconds"]),
            )
            for n in data["next"]
        ],
        right=(1, 2, 3),
    )
    workers = data["workers"]
    answered = f"{len(workers)} answering: {', '.join(workers)}" if workers else "none answering a ping"
    queued = sum(p["queued"] for p in data["priorities"])
    return "\n".join(
        [
            f"queueprio status at {data['at']} (1 = most urgent)",
            "",
            priorities,
            "",
            bands,
            "",
            running if data["running"] else "nothing running",
            "",
            upcoming if data["next"] else "nothing queued",
            "",
            f"queued: {queued}   workers: {answered}",
        ]
    )


def handle(command: BaseCommand, **options: Any) -> None:
    as_json = bool(options.get("json"))
    if not options.get("watch"):
        data = gather(timezone.now(), celery.current_app)
        command.stdout.write(json.dumps(data, indent=2) if as_json else render(data))
        return
    try:
        while True:
            data = gather(timezone.now(), celery.current_app)
            if as_json:
                command.stdout.write(json.dumps(data))
            else:
                command.stdout.write(
                    f"{CLEAR}{render(data)}\n\n(refreshing every {options['interval']:g} s; Ctrl-C stops)"
                )
            command.stdout.flush()
            time.sleep(options["interval"])
    except KeyboardInterrupt:
        command.stdout.write("")
