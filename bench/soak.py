"""Soak: a long saturated run with aging on; afterwards the ledger, results and side effects must agree.

    .venv/bin/python bench/soak.py [--jobs 20000] [--workers 2] [--threshold 2] [--interval 1]
                                   [--backlog 200] [--max-boost 9] [--timeout 1800]

``--workers`` real ``celery worker`` subprocesses (one process each, the project's settings:
late acks, prefetch 1) run the task ``bench.soak`` (appends its task id to a file). A feeder keeps
the ledger's backlog of queued jobs at about ``--backlog``, topping it up every 50 ms with jobs
of uniformly random priority 1–10 (``submit_batch``, one call per priority), until ``--jobs``
were submitted: the workers never run dry, and a steady stream of urgent work keeps arriving,
which is what starves low priorities without aging. The aging sweep runs in a thread of this
process, calling ``queueprio.maintenance.aging.sweep()`` every ``--interval`` seconds (no ``celery beat``: one
process fewer on a small machine, the same function), with ``--threshold`` seconds per step and
``--max-boost`` 9 by default, so every job can climb to priority 1 (the hard bound in
docs/aging.md).

Afterwards every job id must have exactly one ledger row in ``succeeded``, one ``TaskResult``
in ``SUCCESS`` and one line in the side-effect file, and the queue must be empty (stale aged
copies dropped). Reported per requested priority: the wait (``queued_at`` → ``started_at``)
p50 / p95 / max, and how many jobs aged. Checks: p50 and p95 never decrease from priority 1 to
10, and the worst wait at priority 10 stays within the bound of docs/aging.md,
``ceil(9 / boost) × threshold + interval + 2 s`` (the 2 s: the job in hand finishing and the
new copy being delivered, as in tests/queueprio/test_aging_worker.py). A decrease of less than
0.1 s between neighbours counts as noise (priorities 1–6 hardly wait at all). Exit status 0 when
every check passes, 1 when a timing check misses, 2 when anything was lost or duplicated.

Everything runs in a throwaway vhost and SQLite file (``bench.common``).
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.common import (
    ROOT,
    environment,
    isolated_django,
    load_average,
    print_table,
    production_env,
    queue_depth,
    throwaway_vhost,
)

EXIT_TIMING = 1
EXIT_LOST = 2
DELIVERY_SLACK = 2.0
DRAIN_TIMEOUT = 600.0
#: Seconds of wait that count as noise when comparing neighbouring priorities.
NOISE = 0.1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Saturated soak with aging; checks nothing is lost and waits.")
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs in all [20000]")
    parser.add_argument("--workers", type=int, default=2, help="celery worker processes [2]")
    parser.add_argument("--threshold", type=float, default=2.0, help="aging threshold, seconds [2]")
    parser.add_argument("--interval", type=float, default=1.0, help="aging sweep interval, seconds [1]")
    parser.add_argument("--max-boost", type=int, default=9, help="QUEUEPRIO_AGING_MAX_BOOST [9]")
    parser.add_argument("--backlog", type=int, default=200, help="queued jobs the feeder keeps waiting [200]")
    parser.add_argument("--timeout", type=float, default=1800, help="give up after this many seconds [1800]")
    parser.add_argument("--seed", type=int, default=1, help="random seed for the priorities [1]")
    parser.add_argument(
        "--single",
        action="store_true",
        help="submit one job per apply_async call (the path whose copy can reach a worker before "
        "its row commits) instead of one submit_batch per priority",
    )
    parser.add_argument(
        "--database-url", default=None, help="run against this (throwaway!) database, e.g. PostgreSQL, not SQLite"
    )
    return parser.parse_args(argv)


# --- processes -----------------------------------------------------------------------


def start_workers(count: int, logs: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(count):
        args = [sys.executable, "-m", "celery", "-A", "project", "worker", "-n", f"soak{i}@%h", "-c", "1"]
        args += ["-P", "prefork", "-l", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"]
        with open(logs / f"worker{i}.log", "wb") as out:
            env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
            procs.append(subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + 120
    for i, proc in enumerate(procs):
        log = logs / f"worker{i}.log"
        # "Connected to amqp" means it is consuming ("ready." may come late, or not be logged).
        while "Connected to amqp" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_workers(procs)  # none left behind, talking to a vhost about to be deleted
                raise RuntimeError(f"worker {i} did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
    return procs


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class Sweeper(threading.Thread):
    """``queueprio.maintenance.aging.sweep()`` every ``interval`` seconds, on its own DB connection."""

    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        self.interval, self.stopped, self.runs, self.aged = interval, threading.Event(), 0, 0

    def run(self) -> None:
        from django.db import connection

        from queueprio.maintenance.aging import sweep

        try:
            while not self.stopped.wait(self.interval):
                self.aged += sweep().aged
                self.runs += 1
        finally:
            connection.close()


# --- the run -------------------------------------------------------------------------


def feed(
    task: Any, jobs: int, backlog: int, out: str, rng: random.Random, deadline: float, *, single: bool = False
) -> float:
    """Submit ``jobs`` jobs, keeping about ``backlog`` queued; return the seconds it took."""
    from queueprio.models import Job, JobState
    from queueprio.submission.batch import submit_batch

    began, submitted = time.monotonic(), 0
    while submitted < jobs:
        if time.monotonic() > deadline:
            raise TimeoutError(f"feeding: only {submitted} of {jobs} jobs submitted in time")
        need = min(backlog - Job.objects.filter(state=JobState.QUEUED).count(), jobs - submitted)
        if need > 0:
            by_priority = Counter(rng.randint(1, 10) for _ in range(need))
            for priority, count in sorted(by_priority.items()):
                if single:
                    for _ in range(count):
                        task.apply_async(args=[out], priority=priority)
                else:
                    submit_batch(task, [([out], {})] * count, priority=priority)
            submitted += need
        time.sleep(0.05)
    return time.monotonic() - began


def wait_until_done(jobs: int, deadline: float) -> None:
    from queueprio.models import Job, JobState

    finished = (JobState.SUCCEEDED, JobState.FAILED, JobState.PUBLISH_FAILED)
    while Job.objects.filter(state__in=finished).count() < jobs:
        if time.monotonic() > deadline:
            raise TimeoutError("not every job finished in time")
        time.sleep(0.5)


# --- checks and figures --------------------------------------------------------------


@dataclass
class Agreement:
    jobs: int
    ledger_succeeded: int
    results_success: int
    side_effects: int
    problems: list[str]


def agreement(out: Path, jobs: int) -> Agreement:
    """Each job id: one ledger row ``succeeded``, one ``TaskResult`` ``SUCCESS``, one side effect."""
    from django_celery_results.models import TaskResult

    from queueprio.models import Job, JobState

    ledger = dict(Job.objects.values_list("task_id", "state"))
    results = Counter(TaskResult.objects.values_list("task_id", "status"))
    effects = Counter(out.read_text().split())
    problems = []
    if len(ledger) != jobs:
        problems.append(f"{len(ledger)} ledger rows for {jobs} jobs")
    not_ok = Counter(state for state in ledger.values() if state != JobState.SUCCEEDED)
    if not_ok:
        problems.append(f"ledger rows not succeeded: {dict(not_ok)}")
    bad_results = {key: n for key, n in results.items() if key[1] != "SUCCESS" or n != 1}
    if bad_results or {task_id for task_id, _ in results} != set(ledger):
        problems.append(f"results disagree with the ledger: {len(results)} rows, e.g. {list(bad_results)[:3]}")
    if set(effects) != set(ledger):
        problems.append(f"side effects for {len(set(effects))} ids, ledger has {len(ledger)}")
    duplicated = [task_id for task_id, n in effects.items() if n != 1]
    if duplicated:
        problems.append(f"{len(duplicated)} jobs ran more than once, e.g. {duplicated[:3]}")
    return Agreement(
        jobs=jobs,
        ledger_succeeded=sum(state == JobState.SUCCEEDED for state in ledger.values()),
        results_success=sum(n for (_, status), n in results.items() if status == "SUCCESS"),
        side_effects=sum(effects.values()),
        problems=problems,
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def waits_by_priority() -> dict[int, tuple[list[float], int]]:
    """Per requested priority: every job's wait in seconds, and how many jobs were aged."""
    from queueprio.models import Job

    waits: dict[int, list[float]] = defaultdict(list)
    aged: Counter[int] = Counter()
    rows = Job.objects.values_list("requested_priority", "queued_at", "started_at", "generation")
    for priority, queued_at, started_at, generation in rows.iterator():
        if started_at is not None:
            waits[priority].append((started_at - queued_at).total_seconds())
        aged[priority] += generation > 1
    return {p: (waits[p], aged[p]) for p in sorted(waits)}


def print_decomposition(args: argparse.Namespace, bound: float) -> None:
    """Where the slowest priority-10 jobs spent their wait: climbing to priority 1, then queued at it.

    Also how late the sweep published aging steps: a step to ``requested - k × boost`` is due
    ``k × threshold`` after submission.
    """
    from queueprio.conf import settings as qp
    from queueprio.models import AgingReason, AgingStep, Job

    lateness = [
        step.waited_seconds - (step.job.requested_priority - step.to_priority) / qp.AGING_BOOST * args.threshold
        for step in AgingStep.objects.filter(reason=AgingReason.AGING).select_related("job").iterator()
    ]
    if lateness:
        print(
            f"aging steps: {len(lateness)}; published after they were due by p50 {statistics.median(lateness):.2f} s,"
            f" p95 {percentile(lateness, 0.95):.2f} s, max {max(lateness):.2f} s"
        )
    rows = []
    slowest = Job.objects.filter(requested_priority=10, started_at__isnull=False).order_by("-started_at")
    slowest = sorted(slowest.iterator(), key=lambda j: j.started_at - j.queued_at, reverse=True)[:5]
    for job in slowest:
        last = job.aging_steps.filter(at__lte=job.started_at).order_by("-at").first()
        wait = (job.started_at - job.queued_at).total_seconds()
        climbed = (last.at - job.queued_at).total_seconds() if last else 0.0
        since = last.at if last else job.queued_at
        served_ahead = Job.objects.filter(started_at__gt=since, started_at__lt=job.started_at)
        rows.append(
            (
                f"{wait:.2f}",
                last.to_priority if last else 10,
                f"{climbed:.2f}",
                f"{wait - climbed:.2f}",
                served_ahead.count(),
            )
        )
    print()
    print(f"## The slowest priority-10 jobs (bound {bound:.1f} s)")
    print_table(["wait s", "last priority", "reached it after s", "then waited s", "jobs started meanwhile"], rows)
    print()


def monotonic(values: list[float], *, tolerance: float = 0.0) -> bool:
    """Does each value stay at or above the one before, give or take ``tolerance``?"""
    return all(b >= a - tolerance for a, b in itertools.pairwise(values))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = production_env(QUEUEPRIO_EXTRA_TASK_MODULES="bench.soak_tasks")
    load_before = load_average()
    with (
        throwaway_vhost("queueprio-soak") as vhost,
        isolated_django(vhost, database_url=args.database_url, env=env) as tmp,
    ):
        from django.conf import settings

        from bench.soak_tasks import soak
        from queueprio.conf import settings as qp

        settings.QUEUEPRIO_AGING_THRESHOLD_SECONDS = args.threshold
        settings.QUEUEPRIO_AGING_MAX_BOOST = args.max_boost
        bound = math.ceil(9 / qp.AGING_BOOST) * args.threshold + args.interval + DELIVERY_SLACK
        out = tmp / "side-effects.txt"
        out.touch()
        rng = random.Random(args.seed)
        deadline = time.monotonic() + args.timeout

        print("## Environment")
        print_table(
            ["what", "value"],
            [
                *environment(),
                ("workers", f"{args.workers} × `celery worker -c 1 -P prefork`"),
                ("aging", f"threshold {args.threshold} s, boost {qp.AGING_BOOST}, max boost {args.max_boost}"),
                ("sweep", f"thread calling sweep() every {args.interval} s"),
                ("backlog kept", str(args.backlog)),
                ("load average before", load_before),
            ],
        )
        print(flush=True)

        procs = start_workers(args.workers, tmp)
        sweeper = Sweeper(args.interval)
        sweeper.start()
        began = time.monotonic()
        try:
            fed = feed(soak, args.jobs, args.backlog, str(out), rng, deadline, single=args.single)
            wait_until_done(args.jobs, deadline)
            elapsed = time.monotonic() - began
            # Every job has run; what is left are stale aged copies, each dropped unrun on receipt.
            stale = queue_depth(settings.QUEUEPRIO_QUEUE)
            drained = time.monotonic()
            while queue_depth(settings.QUEUEPRIO_QUEUE) and time.monotonic() < drained + DRAIN_TIMEOUT:
                time.sleep(0.5)
            drained = time.monotonic() - drained
            left = queue_depth(settings.QUEUEPRIO_QUEUE)
        finally:
            sweeper.stopped.set()
            sweeper.join(timeout=30)
            stop_workers(procs)

        agreed = agreement(out, args.jobs)
        waits = waits_by_priority()
        print(f"stale copies left when the last job finished: {stale}, dropped in {drained:.0f} s")
        print_decomposition(args, bound)
        return report(args, agreed, waits, left=left, elapsed=elapsed, fed=fed, sweeper=sweeper, bound=bound)


def report(
    args: argparse.Namespace,
    agreed: Agreement,
    waits: dict[int, tuple[list[float], int]],
    *,
    left: int,
    elapsed: float,
    fed: float,
    sweeper: Sweeper,
    bound: float,
) -> int:
    print(f"## Run: {args.jobs} jobs in {elapsed:.0f} s ({args.jobs / elapsed:.0f} jobs/s), fed over {fed:.0f} s")
    print(f"aging sweeps: {sweeper.runs}, copies republished: {sweeper.aged}; messages left in the queue: {left}")
    print(f"load average after: {load_average()}")
    print()
    print("## Agreement (each job id: ledger succeeded, TaskResult SUCCESS, one side effect)")
    print_table(
        ["jobs", "ledger succeeded", "results SUCCESS", "side effects", "verdict"],
        [
            (
                agreed.jobs,
                agreed.ledger_succeeded,
                agreed.results_success,
                agreed.side_effects,
                "PASS" if not agreed.problems else "FAIL",
            )
        ],
    )
    for problem in agreed.problems:
        print(f"  - {problem}")
    print()
    print("## Wait (queued_at → started_at) per requested priority, seconds")
    rows, p50s, p95s = [], [], []
    for priority, (values, aged) in waits.items():
        p50, p95 = statistics.median(values), percentile(values, 0.95)
        p50s.append(p50)
        p95s.append(p95)
        rows.append((priority, len(values), aged, f"{p50:.2f}", f"{p95:.2f}", f"{max(values):.2f}"))
    print_table(["priority", "jobs", "aged", "p50", "p95", "max"], rows)
    worst_10 = max(waits.get(10, ([0.0], 0))[0])
    # Priorities that hardly wait at all (the top levels, under 0.5 s) differ by scheduling noise:
    # one poll, one prefetch. A decrease smaller than that is not an inversion.
    print(f"strictly non-decreasing: p50 {monotonic(p50s)}, p95 {monotonic(p95s)}")
    checks = [
        (f"p50 never decreases from 1 to 10 (by more than {NOISE} s)", monotonic(p50s, tolerance=NOISE)),
        (f"p95 never decreases from 1 to 10 (by more than {NOISE} s)", monotonic(p95s, tolerance=NOISE)),
        (f"worst priority-10 wait {worst_10:.2f} s ≤ bound {bound:.1f} s", worst_10 <= bound),
    ]
    print()
    print_table(["check", "verdict"], [(name, "PASS" if ok else "MISS") for name, ok in checks])
    if agreed.problems or left:
        return EXIT_LOST
    return 0 if all(ok for _, ok in checks) else EXIT_TIMING


if __name__ == "__main__":
    sys.exit(main())
