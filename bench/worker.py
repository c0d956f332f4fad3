"""Worker throughput and submit-to-start latency: queueprio against plain Celery, same run, same broker.

    .venv/bin/python bench/worker.py [--jobs N] [--latency N] [--concurrency C] [--repeat R]
                                     [--database-url URL]

Throughput phases, each a backlog of ``--jobs`` no-op jobs submitted with the worker stopped, then
drained by one ``celery worker -c C`` (acks late, prefetch 1, the project's settings):

(a) plain Celery, no result stored (``ignore_result=True``);
(b) plain Celery storing its result in django-celery-results (with ``task_track_started``, as the
    project sets it);
(q) queueprio: a ``PriorityTask`` no-op (claim, lease, STARTED, finish, its result stored).

Each job appends its start time to a file; a phase's rate is ``(N - 1) / (last - first)``, so the
worker's start is not counted. Every pool process counts the SQL statements it sent and writes
them when it exits: statements per job are printed by kind.

Latency: ``--latency`` single jobs, one at a time, each submitted to an idle worker (the previous
one done): submit-to-start is the job's own start time minus the time ``apply_async`` was called,
p50 and p99, for plain Celery (a) and queueprio (q).

Targets (docs/benchmarks.md): q/b >= 1.0, q/a >= 0.4 on SQLite (>= 0.3 on PostgreSQL), latency
q/a <= 1.3 at p50 and p99.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.common import (
    environment,
    isolated_django,
    load_average,
    print_table,
    production_env,
    purge_queue,
    throwaway_vhost,
)

ROOT = Path(__file__).resolve().parent.parent
TARGET_QB = 1.0
TARGET_QA = {"sqlite3": 0.4, "postgresql": 0.3}
TARGET_LATENCY = 1.3


def start_worker(tmp: Path, name: str, concurrency: int, counts: Path, *, plain: bool) -> subprocess.Popen[bytes]:
    env = dict(os.environ, QUEUEPRIO_EXTRA_TASK_MODULES="bench.worker_tasks", QUEUEPRIO_BENCH_COUNT_DIR=str(counts))
    if plain:  # plain Celery's result backend, as a project without queueprio has it
        env["DJANGO_SETTINGS_MODULE"] = "bench.plain_settings"
    env.update(PYTHONPATH=str(ROOT), QUEUEPRIO_LOG_LEVEL="WARNING")
    args = [sys.executable, "-m", "celery", "-A", "project", "worker", "-n", f"{name}@%h", "-c", str(concurrency)]
    args += ["-P", "prefork", "-l", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115  (closed with the process)
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop_worker(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def times(path: Path) -> list[float]:
    try:
        return [float(line) for line in path.read_text().split()]
    except FileNotFoundError:
        return []


def wait_lines(path: Path, n: int, timeout: float) -> list[float]:
    deadline = time.monotonic() + timeout
    while True:
        seen = times(path)
        if len(seen) >= n:
            return seen
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(seen)} of {n} jobs ran within {timeout:.0f}s: see the worker log")
        time.sleep(0.05)


def submit(phase: str, jobs: int, path: Path) -> None:
    from bench.worker_tasks import noop, plain_noop, plain_noop_result
    from queueprio import submit_batch

    if phase == "q":
        for start in range(0, jobs, 1000):
            submit_batch(noop, [([str(path)], {}) for _ in range(min(1000, jobs - start))], priority=5)
        return
    task = plain_noop if phase == "a" else plain_noop_result
    with task.app.producer_or_acquire() as producer:
        for _ in range(jobs):
            task.apply_async((str(path),), producer=producer, priority=5)


def statements(counts: Path, jobs: int) -> tuple[dict[str, float], float]:
    """Statements per job by kind, and the pool processes' CPU milliseconds per job."""
    from bench.worker_tasks import CPU

    total: Counter[str] = Counter()
    for file in counts.glob("*.json"):
        total.update(json.loads(file.read_text()))
        file.unlink()
    cpu = total.pop(CPU, 0.0)
    return {kind: n / jobs for kind, n in sorted(total.items())}, cpu / jobs


def cpu_ms(pid: int) -> float:
    """The CPU milliseconds process ``pid`` has used (utime + stime, from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def throughput(tmp: Path, phase: str, jobs: int, concurrency: int) -> tuple[float, dict[str, float], float, float]:
    """Jobs/s; statements per job; CPU ms per job in the pool processes and in the worker's main process."""
    from django.conf import settings

    from queueprio.models import Job

    purge_queue(settings.QUEUEPRIO_QUEUE)
    Job.objects.all().delete()
    counts = tmp / f"counts-{phase}"
    counts.mkdir(exist_ok=True)
    effects = tmp / f"effects-{phase}.txt"
    effects.unlink(missing_ok=True)
    submit(phase, jobs, effects)
    worker = start_worker(tmp, f"bench-{phase}", concurrency, counts, plain=phase != "q")
    try:
        wait_lines(effects, 1, timeout=120)
        main_cpu = -cpu_ms(worker.pid)  # from the first job on: its start-up is not counted
        seen = wait_lines(effects, jobs, timeout=600)
        main_cpu += cpu_ms(worker.pid)
    finally:
        stop_worker(worker)
    seen.sort()
    counted, pool_cpu = statements(counts, jobs)
    return (jobs - 1) / (seen[-1] - seen[0]), counted, pool_cpu, main_cpu / jobs


def latency(tmp: Path, phase: str, n: int) -> list[float]:
    from bench.worker_tasks import noop, plain_noop

    counts = tmp / f"counts-lat-{phase}"
    counts.mkdir(exist_ok=True)
    effects = tmp / f"latency-{phase}.txt"
    effects.unlink(missing_ok=True)
    task = noop if phase == "q" else plain_noop
    worker = start_worker(tmp, f"lat-{phase}", 1, counts, plain=phase != "q")
    waits = []
    try:
        task.apply_async((str(effects),), priority=5)  # warm up: the worker is consuming
        wait_lines(effects, 1, timeout=120)
        for i in range(n):
            sent = time.time()
            task.apply_async((str(effects),), priority=5)
            started = wait_lines(effects, i + 2, timeout=60)[-1]
            waits.append(started - sent)
    finally:
        stop_worker(worker)
    return waits


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--latency", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--database-url")
    options = parser.parse_args()
    env = production_env()
    with throwaway_vhost() as vhost, isolated_django(vhost, database_url=options.database_url, env=env) as tmp:
        from django.conf import settings

        engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        print_table(["", ""], [*environment(), ("load (1/5/15 min)", load_average())])
        rates: dict[str, list[float]] = {"a": [], "b": [], "q": []}
        per_job: dict[str, dict[str, float]] = {}
        cpu: dict[str, tuple[float, float]] = {}
        for r in range(options.repeat):
            order = ["a", "b", "q"][r % 3 :] + ["a", "b", "q"][: r % 3]  # interleaved against drift
            for phase in order:
                rate, counted, pool_cpu, main_cpu = throughput(tmp, phase, options.jobs, options.concurrency)
                rates[phase].append(rate)
                per_job[phase] = counted
                cpu[phase] = (pool_cpu, main_cpu)
        rate = {phase: statistics.median(values) for phase, values in rates.items()}
        print()
        print_table(
            ["worker throughput", "jobs/s", "CPU ms/job: pool, main", "statements per job"],
            [
                (
                    name,
                    f"{rate[p]:,.0f}",
                    f"{cpu[p][0]:.2f}, {cpu[p][1]:.2f}",
                    ", ".join(f"{k} {v:.2f}" for k, v in per_job[p].items()) or "0",
                )
                for p, name in (
                    ("a", "(a) plain, no result"),
                    ("b", "(b) plain, django-db result"),
                    ("q", "(q) queueprio"),
                )
            ],
        )
        waits = {phase: latency(tmp, phase, options.latency) for phase in ("a", "q")}
        p = {phase: (quantile(w, 0.5), quantile(w, 0.99)) for phase, w in waits.items()}
        print()
        target_qa = TARGET_QA.get(engine, 0.3)
        rows = [
            (
                "throughput q/b",
                f"{rate['q'] / rate['b']:.2f}",
                f">= {TARGET_QB}",
                verdict(rate["q"] / rate["b"] >= TARGET_QB),
            ),
            (
                "throughput q/a",
                f"{rate['q'] / rate['a']:.2f}",
                f">= {target_qa}",
                verdict(rate["q"] / rate["a"] >= target_qa),
            ),
            (
                "submit-to-start p50 q/a",
                f"{p['q'][0] * 1000:.1f} / {p['a'][0] * 1000:.1f} ms = {p['q'][0] / p['a'][0]:.2f}",
                f"<= {TARGET_LATENCY}",
                verdict(p["q"][0] / p["a"][0] <= TARGET_LATENCY),
            ),
            (
                "submit-to-start p99 q/a",
                f"{p['q'][1] * 1000:.1f} / {p['a'][1] * 1000:.1f} ms = {p['q'][1] / p['a'][1]:.2f}",
                f"<= {TARGET_LATENCY}",
                verdict(p["q"][1] / p["a"][1] <= TARGET_LATENCY),
            ),
        ]
        print_table(["ratio", "value", "target", ""], rows)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


if __name__ == "__main__":
    main()
