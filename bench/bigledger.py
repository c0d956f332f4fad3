"""A big ledger against a small one: single submission, the aging sweep, a claim, and pruning.

    .venv/bin/python bench/bigledger.py --database-url URL [--finished 1000000] [--queued 100000]
                                        [--small 10000] [--jobs 300] [--due 1000] [--prune-rows 200000]

PostgreSQL (the database must exist and be a throwaway one). The ledger is grown in place with
``INSERT … SELECT … generate_series`` copies of one real submitted row: first to ``--small``
rows (a tenth queued, the rest finished), measured; then to ``--finished`` finished rows (40
days old: past the retention) plus ``--queued`` queued ones (not due), ``VACUUM ANALYZE``,
measured again. Each size measures, median of 3:

* single submission: ``converters.convert`` ``--jobs`` times, ms per job;
* the aging sweep of ``--due`` due jobs (``maintenance.aging.sweep``), then put back;
* a worker's claim (``JobQuerySet.claim``, the statement the worker runs) of ``--jobs`` queued
  rows, ms per claim (rolled back, so every round claims the same rows).

Then pruning: ``maintenance.retention.delete_in_batches`` of ``--prune-rows`` of the old finished
rows (``QUEUEPRIO_PRUNE_BATCH_SIZE`` per transaction) runs in a process of its own (as a worker
runs the prune task) while this process submits one job after another; the submissions' latency
during the prune is compared with the same number of submissions without it (worst and p99).
Target (issue 13): big / small <= 1.2 for each of the three costs; pruning adds at most a few
milliseconds to any submission.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.common import isolated_django, load_average, print_table, production_env, purge_queue, throwaway_vhost

TARGET = 1.2
SOURCE = "in.csv"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", required=True, help="a throwaway PostgreSQL database")
    parser.add_argument("--finished", type=int, default=1_000_000)
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--prune-rows", type=int, default=200_000)
    return parser.parse_args(argv)


def grow(template_id: int, count: int, *, state: str, tag: str) -> None:
    """``count`` copies of the template row in ``state``: finished ones 40 days old, queued ones not due."""
    from django.db import connection

    from queueprio.models import Band, Job

    table = Job._meta.db_table
    columns = [f.column for f in Job._meta.concrete_fields if f.column not in ("id",)]
    override = {
        "task_id": f"'{tag}-' || g",
        "token": "md5(g::text)",
        "state": "%(state)s",
        "idempotency_key": "NULL",
    }
    if state == "queued":
        override |= {"next_aging_at": "now() + interval '1 hour' + g * interval '1 millisecond'", "queued_at": "now()"}
    else:
        override |= {
            "finished_at": "now() - interval '40 days'",
            "queued_at": "now() - interval '40 days'",
            "next_aging_at": "NULL",
        }
    select = ", ".join(override.get(c, f"t.{c}") for c in columns)
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {select} "  # noqa: S608  (our own names)
        f"FROM {table} t, generate_series(1, %(count)s) g WHERE t.id = %(id)s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {"state": state, "count": count, "id": template_id})
    if state == "queued":
        band = Job.objects.get(pk=template_id).band_id
        Band.objects.reacquire(band, count)


def vacuum() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE queueprio_job")


def submissions(n: int) -> list[float]:
    from converters import convert

    out = []
    for _ in range(n):
        start = time.perf_counter()
        convert("csv_to_json", SOURCE, priority=5)
        out.append(time.perf_counter() - start)
    return out


def drop_submitted(tag_before: int) -> None:
    """Remove the benchmark's own submissions (rows above ``tag_before``) and their places."""
    from django.db.models import Count

    from queueprio.models import Band, Job

    rows = Job.objects.filter(pk__gt=tag_before)
    for band, count in rows.filter(state="queued").values_list("band").annotate(n=Count("pk")):
        Band.objects.release(band, count)
    rows.delete()


def sweep_cost(due: int, queue: str) -> float:
    from django.db import connection
    from django.utils import timezone

    from queueprio.maintenance.aging import sweep
    from queueprio.models import Job

    ids = list(Job.objects.filter(state="queued", task_id__startswith="q").values_list("pk", flat=True)[:due])
    past = timezone.now() - timedelta(hours=1)
    Job.objects.filter(pk__in=ids).update(
        requested_priority=9, effective_priority=9, next_aging_at=past, queued_at=past, aging_since=past, generation=1
    )
    start = time.perf_counter()
    sweep()
    took = time.perf_counter() - start
    later = timezone.now() + timedelta(hours=1)
    Job.objects.filter(pk__in=ids).update(next_aging_at=later)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM queueprio_agingstep")
    purge_queue(queue)
    return took


def claim_cost(n: int) -> float:
    from django.db import transaction
    from django.utils import timezone

    from queueprio.models import Job

    rows = list(
        Job.objects.filter(state="queued", task_id__startswith="q").values_list("task_id", "generation", "token")[:n]
    )
    now = timezone.now()
    start = time.perf_counter()
    with transaction.atomic():
        for task_id, generation, token in rows:
            if Job.objects.claim(task_id, generation, token, worker="bench", now=now, lease_until=now) is None:
                raise SystemExit(f"claim of {task_id} lost")
        transaction.set_rollback(True)  # the same rows every round
    return (time.perf_counter() - start) / n


def measure(args: argparse.Namespace, queue: str, last_id: int) -> dict[str, float]:
    from queueprio.models import Job

    costs: dict[str, list[float]] = {"submission ms": [], "sweep s": [], "claim ms": []}
    for _ in range(3):
        costs["submission ms"].append(statistics.mean(submissions(args.jobs)) * 1000)
        drop_submitted(last_id)
        purge_queue(queue)
        costs["sweep s"].append(sweep_cost(args.due, queue))
        costs["claim ms"].append(claim_cost(args.jobs) * 1000)
    print(f"  ledger rows: {Job.objects.count():,}", file=sys.stderr)
    return {k: statistics.median(v) for k, v in costs.items()}


def prune_impact(args: argparse.Namespace, queue: str, last_id: int) -> tuple[list[float], list[float], float]:
    from queueprio.models import Job

    quiet = submissions(args.jobs)
    drop_submitted(last_id)
    # The oldest --prune-rows finished rows (all of them 40 days old: past the retention).
    ids = Job.objects.finished().order_by("pk").values_list("pk", flat=True)
    cut = ids[min(args.prune_rows, ids.count()) - 1]
    # In a process of its own, as in production (a worker runs the prune task): a thread
    # would make the submissions wait for the GIL, not for the database.
    from django.db import connections

    connections.close_all()
    ctx = multiprocessing.get_context("fork")
    result = ctx.Queue()
    child = ctx.Process(target=prune_child, args=(cut, result))
    started = time.perf_counter()
    child.start()
    during: list[float] = []
    while child.is_alive():
        during += submissions(10)
    child.join()
    pruned = [result.get(timeout=10) if not result.empty() else time.perf_counter() - started]
    drop_submitted(last_id)
    purge_queue(queue)
    return quiet, during, pruned[0]


def verdict_of(ratio: float) -> str:
    return "PASS" if ratio <= TARGET else "MISS"


def ms(ordered: list[float], q: float) -> str:
    return f"{ordered[max(0, int(len(ordered) * q) - 1)] * 1000:.1f}"


def prune_child(cut: int, result: Any) -> None:
    """The prune, in a forked process: ``delete_in_batches`` of the finished rows up to ``cut``."""
    from queueprio.conf import settings
    from queueprio.maintenance.retention import delete_in_batches
    from queueprio.models import Job

    start = time.perf_counter()
    delete_in_batches(Job.objects.finished().filter(pk__lte=cut), batch_size=int(settings.PRUNE_BATCH_SIZE))
    result.put(time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = production_env()
    load_before = load_average()
    with (
        throwaway_vhost("queueprio-bench-big") as vhost,
        isolated_django(vhost, database_url=args.database_url, env=env) as tmp,
    ):
        from django.conf import settings

        from converters import convert
        from queueprio.models import Band, Job

        (tmp / "files" / SOURCE).write_text("id,name,qty\n1,apple,3\n")
        queue = settings.QUEUEPRIO_QUEUE
        purge_queue(queue)
        Band.objects.update(max_queued=None)  # a throwaway database: the backlog must not fill the band
        template = Job.objects.get(task_id=convert("csv_to_json", SOURCE, priority=5).id)
        purge_queue(queue)
        started = time.perf_counter()
        grow(template.pk, args.small // 10, state="queued", tag="q")
        grow(template.pk, args.small - args.small // 10, state="succeeded", tag="f")
        vacuum()
        last_id = Job.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        small = measure(args, queue, last_id)
        grow(template.pk, args.queued - args.small // 10, state="queued", tag="qb")
        grow(template.pk, args.finished - (args.small - args.small // 10), state="succeeded", tag="fb")
        vacuum()
        last_id = Job.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        print(f"  ledger built in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        big = measure(args, queue, last_id)
        quiet, during, prune_seconds = prune_impact(args, queue, last_id)

        print(f"## Big ledger ({args.finished:,} finished + {args.queued:,} queued) against {args.small:,} rows")
        rows = [
            [what, f"{small[what]:.3f}", f"{big[what]:.3f}", f"{ratio:.2f}", f"<= {TARGET}", verdict_of(ratio)]
            for what in small
            for ratio in [big[what] / small[what]]
        ]
        print_table(["cost", f"{args.small:,} rows", "big", "ratio", "target", "result"], rows)
        q = sorted(quiet)
        d = sorted(during)
        print(f"\n## Submissions while {args.prune_rows:,} finished rows are pruned ({prune_seconds:.1f} s)")
        print_table(
            ["submissions", "n", "p50 ms", "p99 ms", "worst ms"],
            [
                [
                    label,
                    len(v),
                    f"{v[len(v) // 2] * 1000:.1f}",
                    f"{v[int(len(v) * 0.99) - 1] * 1000:.1f}",
                    f"{v[-1] * 1000:.1f}",
                ]
                for label, v in (("without pruning", q), ("during pruning", d))
            ],
        )
        extra = (d[int(len(d) * 0.99) - 1] - q[int(len(q) * 0.99) - 1]) * 1000
        print()
        print_table(
            ["ratio", "value", "target", "result"],
            [["prune: added p99 submission latency (ms)", f"{extra:.1f}", "<= 5", "PASS" if extra <= 5 else "MISS"]],
        )
        print(f"load average before / after: {load_before} / {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
