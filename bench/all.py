"""Every benchmark on SQLite and PostgreSQL, then one table of their ratios with PASS/MISS (``make bench``).

    .venv/bin/python bench/all.py [--quick] [--only NAME,...] [--postgres URL] [--logs DIR]

Runs, one after the other (each in its own process, vhost and throwaway database):
``bench/submit.py`` (single, batch, raw broker rates), ``bench/concurrent.py`` (1-8 submitting
processes, PostgreSQL only), ``bench/aging.py`` (the sweep against the backlog) and
``bench/worker.py`` (worker throughput and latency), sized to finish in under ten minutes on
2 cores (``--quick``: smaller still, for a smoke run; ``--big`` adds ``bench/bigledger.py``).
Each one's full output goes to ``--logs`` (a temp dir by default); the summary collects every
row of their ratio tables that says PASS or MISS. PostgreSQL databases are created as
``bench_submit_<bench>_<pid>`` on the ``--postgres`` server and dropped at the end. Exit status
1 if a bench failed to run.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.common import ROOT, load_average, print_table

PG_SERVER = "postgres://postgres@127.0.0.1:5432"
#: A ratio table's row that carries a verdict: ``| name | value | target | PASS |`` (and more cells).
VERDICT = re.compile(r"^\|.*\|\s*(PASS|MISS)\s*\|")


def benches(quick: bool, big: bool = False) -> list[tuple[str, str, list[str]]]:
    """``(bench, database, arguments)``; ``database`` is ``sqlite`` or ``postgres``."""
    small = {
        "submit": ["--jobs", "200", "--batch", "2000", "--repeat", "1", "--warmup", "50"],
        "concurrent": ["--jobs", "50", "--repeat", "1", "--control"],
        "aging": ["--due", "200", "--backlogs", "2000,20000", "--repeat", "1"],
        "worker": ["--jobs", "300", "--latency", "20"],
    }
    full = {  # about 9 minutes in all on 2 cores at load ~3
        "submit": ["--jobs", "300", "--batch", "10000", "--repeat", "1", "--warmup", "50", "--control"],
        "concurrent": ["--jobs", "100", "--repeat", "1", "--control"],
        "aging": ["--due", "1000", "--backlogs", "10000,50000", "--repeat", "1"],  # 100k: bench/aging.py alone
        "worker": ["--jobs", "1000", "--latency", "50"],
    }
    sizes = small if quick else full
    return [
        ("submit", "sqlite", sizes["submit"]),
        ("submit", "postgres", sizes["submit"]),
        ("concurrent", "postgres", sizes["concurrent"]),
        ("aging", "sqlite", ["--databases", "sqlite", *sizes["aging"]]),
        ("aging", "postgres", ["--databases", "postgres", *sizes["aging"]]),
        ("worker", "sqlite", sizes["worker"]),
        ("worker", "postgres", sizes["worker"]),
    ] + ([("bigledger", "postgres", [])] if big else [])


def psql(server: str, sql: str) -> None:
    subprocess.run(["psql", f"{server}/postgres", "-qc", sql], check=True, capture_output=True)


def run(name: str, database: str, arguments: list[str], server: str, logs: Path) -> tuple[int, float, list[str]]:
    """Run one bench; returns its exit status, seconds, and its verdict rows."""
    arguments = list(arguments)
    created = None
    if database == "postgres":
        db = f"bench_submit_{name}_{os.getpid()}"
        if name == "aging":
            arguments += ["--database-url", f"{server}/{db}"]  # aging.py creates and drops its own
        else:
            psql(server, f"CREATE DATABASE {db}")
            created = db
            arguments += ["--database-url", f"{server}/{db}"]
    log = logs / f"{name}-{database}.txt"
    started = time.monotonic()
    try:
        with log.open("w") as out:
            status = subprocess.run(
                [sys.executable, str(ROOT / "bench" / f"{name}.py"), *arguments],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                check=False,
            ).returncode
    finally:
        if created is not None:
            psql(server, f"DROP DATABASE IF EXISTS {created} WITH (FORCE)")
    rows = [line for line in log.read_text().splitlines() if VERDICT.match(line)]
    return status, time.monotonic() - started, rows


def cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a smoke run of every bench")
    parser.add_argument("--only", default="", help="comma-separated bench names (submit, concurrent, aging, worker)")
    parser.add_argument("--postgres", default=PG_SERVER, help=f"PostgreSQL server URL, no database [{PG_SERVER}]")
    parser.add_argument(
        "--big", action="store_true", help="also bench/bigledger.py at full size (1.1M rows: adds ~10 minutes)"
    )
    parser.add_argument("--logs", type=Path, default=None, help="keep every bench's output here")
    args = parser.parse_args(argv)
    only = {n for n in args.only.split(",") if n}
    logs = args.logs or Path(tempfile.mkdtemp(prefix="queueprio-bench-all-"))
    logs.mkdir(parents=True, exist_ok=True)
    load_before, started = load_average(), time.monotonic()
    summary, failed = [], []
    for name, database, arguments in benches(args.quick, args.big):
        if only and name not in only:
            continue
        print(f"running bench/{name}.py on {database} ...", file=sys.stderr, flush=True)
        status, seconds, rows = run(name, database, arguments, args.postgres, logs)
        print(f"  exit {status} in {seconds:.0f} s; output in {logs}/{name}-{database}.txt", file=sys.stderr)
        if status not in (0, 1) or not rows:
            failed.append(f"{name} on {database} (exit {status})")
        for row in rows:
            parts = cells(row)
            verdict_at = next(i for i, c in enumerate(parts) if c in ("PASS", "MISS"))
            target = parts[verdict_at - 1]
            value = parts[verdict_at - 2] if verdict_at >= 2 else ""
            summary.append([f"{name}: {parts[0]}", database, value, target, parts[verdict_at]])
    print(
        f"\n## All benchmarks ({time.monotonic() - started:.0f} s; load average before / after: "
        f"{load_before} / {load_average()}; logs in {logs})"
    )
    print_table(["ratio", "database", "value", "target", "result"], summary)
    for what in failed:
        print(f"FAILED TO RUN: {what}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
