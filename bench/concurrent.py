"""Concurrent submitters: 1, 2, 4, 8 processes calling ``converters.convert`` at one priority.

    .venv/bin/python bench/concurrent.py [--database-url URL] [--processes 1,2,4,8] [--jobs N]
                                         [--repeat R] [--json PATH] [--check]

Each process submits ``--jobs`` jobs (single submissions, confirmed) into the same band, all
started together; the rate is all jobs over the wall time from the start to the last process's
end, the median of ``--repeat`` rounds, the process counts interleaved (rotated) per round.
Every round checks that the queue and the ledger hold exactly the jobs sent and that the band's
counter says so too, then empties both. Django is set up once and the processes are forked from
it (connections closed first; Celery resets its pools after a fork). Target (issue 13): the
rate at 8 processes >= 3x the rate at 1, on PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.common import (
    isolated_django,
    load_average,
    print_table,
    production_env,
    purge_queue,
    queue_depth,
    throwaway_vhost,
    verdict,
)

TARGET = 3.0  # rate(8 processes) / rate(1)
PRIORITY = 5
SOURCE = "in.csv"
EXIT_LOST = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None, help="a throwaway database (PostgreSQL); SQLite if unset")
    parser.add_argument("--processes", default="1,2,4,8", help="process counts [1,2,4,8]")
    parser.add_argument("--jobs", type=int, default=300, help="jobs per process per round [300]")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median rate is reported [3]")
    parser.add_argument("--json", type=Path, default=None, help="also write the rates and ratio here")
    parser.add_argument("--check", action="store_true", help="exit 1 if the target is missed")
    parser.add_argument(
        "--control",
        action="store_true",
        help="also run every count with no band covering the priority (no counter row to lock): "
        "what the band's hot row costs",
    )
    return parser.parse_args(argv)


def submitter(jobs: int, start: Any, out: Any) -> None:
    """One forked process: wait for the start, submit, report the ids and the end time."""
    from converters import convert

    start.wait()
    cpu = time.process_time()
    ids = [convert("csv_to_json", SOURCE, priority=PRIORITY).id for _ in range(jobs)]
    out.put((time.perf_counter(), time.process_time() - cpu, ids))


def round_of(processes: int, jobs: int) -> tuple[float, float, list[str]]:
    """Wall seconds, the submitters' CPU seconds (user + system), and the ids."""
    from django.db import connections

    connections.close_all()  # never share a socket with a child
    ctx = multiprocessing.get_context("fork")
    start, out = ctx.Barrier(processes + 1), ctx.Queue()
    children = [ctx.Process(target=submitter, args=(jobs, start, out)) for _ in range(processes)]
    for child in children:
        child.start()
    start.wait()
    began = time.perf_counter()
    results = [out.get(timeout=600) for _ in children]
    for child in children:
        child.join()
    ended = max(end for end, _, _ in results)
    return ended - began, sum(cpu for _, cpu, _ in results), [task_id for _, _, ids in results for task_id in ids]


def verify_and_reset(queue: str, ids: list[str]) -> None:
    from django.db.models import Count

    from queueprio.models import Band, Job

    rows = Job.objects.filter(task_id__in=ids)
    depth, count = queue_depth(queue), rows.count()
    if not depth == count == len(ids):
        print(f"LOST JOBS: sent {len(ids)}, queue {depth}, ledger {count}", file=sys.stderr)
        raise SystemExit(EXIT_LOST)
    for band, n in rows.values_list("band").annotate(n=Count("pk")):
        Band.objects.release(band, n)
    rows.delete()
    purge_queue(queue)
    if any(band.queued for band in Band.objects.all()):
        print("band counters not back to zero: admission lost count", file=sys.stderr)
        raise SystemExit(EXIT_LOST)


def measure(queue: str, counts: list[int], args: argparse.Namespace, label: str) -> dict[int, float]:
    """Rounds of every process count, rotated; prints and returns the median rate per count."""
    from django.conf import settings

    seconds: dict[int, list[float]] = {n: [] for n in counts}
    cpu: dict[int, list[float]] = {n: [] for n in counts}
    for i in range(args.repeat):
        for n in counts[i % len(counts) :] + counts[: i % len(counts)]:
            took, used, ids = round_of(n, args.jobs)
            verify_and_reset(queue, ids)
            seconds[n].append(took)
            cpu[n].append(used / (n * args.jobs))
            print(f"  round {i + 1}: {n} processes, {n * args.jobs} jobs in {took:.2f} s", file=sys.stderr)
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    rates = {n: statistics.median(n * args.jobs / s for s in seconds[n]) for n in counts}
    print(f"\n## Concurrent submitters, {label} ({engine}; {args.jobs} jobs per process, median of {args.repeat})")
    cores = os.cpu_count() or 1
    # The submitters' own CPU per job bounds the rate: cores / cpu-per-job, before PostgreSQL
    # and RabbitMQ (on the same cores here) take any.
    print_table(
        ["processes", "jobs/s", f"vs {counts[0]}", "submitter CPU ms/job", f"CPU ceiling on {cores} cores"],
        [
            [
                n,
                f"{rates[n]:,.0f}",
                f"{rates[n] / rates[counts[0]]:.2f}",
                f"{statistics.median(cpu[n]) * 1000:.2f}",
                f"{min(n, cores) / statistics.median(cpu[n]):,.0f}",
            ]
            for n in counts
        ],
    )
    return rates


@contextmanager
def no_band_for(priority: int) -> Iterator[None]:
    """Delete the band covering ``priority`` for the block, then put it back (a throwaway database;
    the rounds leave no job behind to reference it)."""
    from queueprio.models import Band

    values = Band.objects.filter(most_urgent__lte=priority, least_urgent__gte=priority).values().get()
    Band.objects.filter(pk=values["id"]).delete()
    try:
        yield
    finally:
        Band.objects.create(**values)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    counts = [int(n) for n in args.processes.split(",")]
    env = production_env()
    load_before = load_average()
    with (
        throwaway_vhost("queueprio-bench-conc") as vhost,
        isolated_django(vhost, database_url=args.database_url, env=env) as tmp,
    ):
        from django.conf import settings

        (tmp / "files" / SOURCE).write_text("id,name,qty\n1,apple,3\n")
        queue = settings.QUEUEPRIO_QUEUE
        purge_queue(queue)
        verify_and_reset(queue, round_of(1, 20)[2])  # warm-up: imports, the task's rows, the queue
        rates = measure(queue, counts, args, "band counter")
        ratio = rates[counts[-1]] / rates[counts[0]]
        ratios = [[f"{counts[-1]} / {counts[0]} submitters", f"{ratio:.2f}", f">= {TARGET}", verdict(ratio, TARGET)]]
        if args.control:
            with no_band_for(PRIORITY):
                control = measure(queue, counts, args, "control: no band, no counter row")
            ratios.append(
                [
                    f"control, no band: {counts[-1]} / {counts[0]}",
                    f"{control[counts[-1]] / control[counts[0]]:.2f}",
                    "",
                    "",
                ]
            )
        print()
        print_table(["ratio", "value", "target", "result"], ratios)
        print(f"load average before / after: {load_before} / {load_average()}")
        engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        if args.json is not None:
            summary = {
                "engine": engine,
                "rates": rates,
                "ratios": [[f"{counts[-1]}/{counts[0]} submitters", ratio, TARGET]],
            }
            args.json.write_text(json.dumps(summary, indent=1))
        return 1 if (args.check and ratio < TARGET) else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
