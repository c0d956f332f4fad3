"""Aging sweep cost against the backlog: one ``queueprio.maintenance.aging.sweep()`` with ``--due`` jobs due.

    .venv/bin/python bench/aging.py [--databases sqlite,postgres] [--database-url URL]
                                    [--due 1000] [--backlogs 10000,100000] [--repeat 3]
                                    [--batch-size N] [--log-level LEVEL] [--check]

For each backlog size (ascending) the ledger holds that many queued jobs, of which ``--due``
are due: queued an hour ago at priority 9, their ``next_aging_at`` in the past, so the rule
(default threshold 300 s, max boost 4) republishes each at priority 5. The rest are queued
too but not due (``next_aging_at`` one to two hours ahead, so none falls due during the run).
Each backlog is built with ``bulk_create`` in a database of its own, so that the timed sweeps
can alternate between the backlogs (rotating which goes first): a change in background load
then hits every size alike instead of skewing the ratio. No worker runs.

For each backlog the plan of the sweep's due-rows query is printed (SQLite ``EXPLAIN QUERY
PLAN``; PostgreSQL ``EXPLAIN`` and ``EXPLAIN ANALYZE`` of the ``SELECT … FOR UPDATE SKIP
LOCKED``) and one warm-up sweep runs. Then, ``--repeat`` times, each backlog gets one timed
sweep and one instrumented sweep, which splits the time into the due-rows SELECT (including
fetching the rows), the publishes
(``queueprio.broker.publish.send``: the task message and its ``task-sent`` event, each confirmed),
the row writes (the conditional UPDATE and the AgingStep INSERT per job), transaction control
(BEGIN, savepoints, COMMIT) and the rest (Python: planning, logging, the ORM). Before every
sweep the queue is purged, the AgingStep rows deleted and the due rows put back as they were
(generation 1, priority 9, ``next_aging_at`` in the past), so every sweep does the same work;
on PostgreSQL the tables are then vacuumed and analysed (as autovacuum would). After every
sweep the bench checks that it stepped exactly ``--due`` jobs and that the queue holds exactly
``--due`` messages, or aborts with exit status 2.

Each engine runs in its own child process (Django is set up once per process), against a
throwaway vhost and either throwaway SQLite files or throwaway PostgreSQL databases that the
bench creates (the one named by ``--database-url`` for the smallest backlog, ``<name>_<size>``
for the others; it refuses existing ones) and drops at the end. Target: the sweep's cost
follows the due rows, not the backlog: median sweep(largest) / median sweep(smallest) <= 1.5.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

if __package__ in (None, ""):
    # Started as ``python bench/aging.py``: import the project from the repository root.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.common import (
    environment,
    isolated_django,
    load_average,
    print_table,
    production_env,
    purge_queue,
    queue_depth,
    throwaway_vhost,
    timed,
)

TARGET_RATIO = 1.5  # sweep(largest backlog) / sweep(smallest) at most this
PG_SERVER = "postgres://postgres@127.0.0.1:5432"
TASK = "converters.csv_to_json"
ARGS = ["in.csv", "in.json"]
KWARGS: dict[str, Any] = {"options": {}}
DUE_PRIORITY = 9  # requested priority of the due jobs; an hour of waiting ages them to 5
WAITED = timedelta(hours=1)
INDEX = "queueprio_job_due_idx"
STAGES = ("select", "publish", "row writes", "transaction", "other")
#: Shell exit status when a sweep did not step (or the queue did not hold) exactly the due jobs.
EXIT_LOST = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Cost of one aging sweep against the size of the queued backlog.")
    parser.add_argument(
        "--databases",
        default=None,
        help="comma-separated: sqlite, postgres [sqlite; postgres alone with --database-url]",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="PostgreSQL URL of a database that must NOT exist yet: the bench creates it and drops it "
        f"[with --databases postgres: {PG_SERVER}/queueprio_agingbench_<pid>]",
    )
    parser.add_argument("--due", type=int, default=1_000, help="due jobs in every backlog [1000]")
    parser.add_argument(
        "--backlogs", default="10000,100000", help="comma-separated queued-job counts, due ones included [10000,100000]"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed sweeps per backlog; the median is reported [3]")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="QUEUEPRIO_AGING_BATCH_SIZE for the run [the project's: 500]"
    )
    parser.add_argument(
        "--log-level", default="WARNING", help="queueprio log level [WARNING]; at INFO every republish logs a line"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the target is missed")
    parser.add_argument("--child-json", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        args.backlog_sizes = sorted({int(x) for x in args.backlogs.split(",") if x.strip()})
    except ValueError:
        parser.error("--backlogs takes comma-separated integers")
    if not args.backlog_sizes or args.backlog_sizes[0] < args.due:
        parser.error("every backlog must hold at least the --due jobs")
    if args.due < 1 or args.repeat < 1:
        parser.error("--due and --repeat must be at least 1")
    names = args.databases or ("postgres" if args.database_url else "sqlite")
    args.database_names = [n.strip() for n in names.split(",") if n.strip()]
    if not args.database_names or set(args.database_names) - {"sqlite", "postgres"}:
        parser.error("--databases takes sqlite and/or postgres")
    if args.database_url and not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("--database-url must be a PostgreSQL URL (SQLite always gets a throwaway file)")
    return args


# --- the parent: one child process per database ----------------------------------------


def database_names(first: str, sizes: list[int]) -> dict[int, str]:
    """One database per backlog size: ``first`` for the smallest, ``<first>_<size>`` for the others."""
    return {size: first if i == 0 else f"{first}_{size}" for i, size in enumerate(sizes)}


@contextmanager
def throwaway_postgres(url: str, sizes: list[int]) -> Iterator[str]:
    """Create the databases for ``url`` (refusing existing ones) and drop them on the way out."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    first = parts.path.lstrip("/")
    if not first:
        raise SystemExit(f"--database-url {url!r} names no database")
    names = list(database_names(first, sizes).values())
    admin = urlunsplit(parts._replace(path="/postgres"))
    created: list[str] = []
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in names:
                if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                    raise SystemExit(f"database {name!r} already exists: the bench only writes to databases it created")
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                created.append(name)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in created:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def run_child(args: argparse.Namespace, database_url: str | None, out: Path) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        f"--due={args.due}",
        f"--backlogs={','.join(map(str, args.backlog_sizes))}",
        f"--repeat={args.repeat}",
        f"--log-level={args.log_level}",
        f"--child-json={out}",
    ]
    if args.batch_size:
        command.append(f"--batch-size={args.batch_size}")
    if database_url:
        command.append(f"--database-url={database_url}")
    status = subprocess.run(command, check=False).returncode
    if status != 0:
        raise SystemExit(status)
    return json.loads(out.read_text())


def parent(args: argparse.Namespace) -> int:
    results = []
    with tempfile.TemporaryDirectory(prefix="queueprio-agingbench-") as tmp:
        for name in args.database_names:
            out = Path(tmp) / f"{name}.json"
            if name == "sqlite":
                results.append(run_child(args, None, out))
                continue
            url = args.database_url or f"{PG_SERVER}/queueprio_agingbench_{os.getpid()}"
            with throwaway_postgres(url, args.backlog_sizes):
                results.append(run_child(args, url, out))

    small, large = args.backlog_sizes[0], args.backlog_sizes[-1]
    print(f"\n## Summary: median sweep of {args.due} due jobs (of {args.repeat}), against the backlog")
    rows, missed = [], False
    for result in results:
        medians = {int(k): v["median"] for k, v in result["sizes"].items()}
        ratio = medians[large] / medians[small]
        missed |= ratio > TARGET_RATIO
        rows.append(
            [
                result["database"],
                *(f"{medians[n]:.3f}" for n in args.backlog_sizes),
                f"{ratio:.2f}",
                f"<= {TARGET_RATIO}",
                "PASS" if ratio <= TARGET_RATIO else "MISS",
                ", ".join("yes" if result["sizes"][str(n)]["index_used"] else "NO" for n in args.backlog_sizes),
            ]
        )
    print_table(
        [
            "database",
            *(f"{n:,} queued: s" for n in args.backlog_sizes),
            f"ratio {large // 1000}k/{small // 1000}k",
            "target",
            "result",
            f"{INDEX} used",
        ],
        rows,
    )
    return 1 if (missed and args.check) else 0


# --- the child: one database -------------------------------------------------------------


class Ledger:
    """One backlog in its own database: builds it, and puts the due rows back before every sweep."""

    def __init__(self, size: int, due: int, database: str, start: datetime) -> None:
        self.size = size
        self.due = due
        self.database = database  # the SQLite file or PostgreSQL database holding this backlog
        self.start = start
        self.due_pks: list[int] = []

    def use(self) -> None:
        """Point Django's default connection at this backlog's database."""
        from django.db import connection

        if connection.settings_dict["NAME"] != self.database:
            connection.close()
            connection.settings_dict["NAME"] = self.database

    def build(self) -> float:
        """Migrate, then add ``size`` queued rows, ``due`` of them due; returns the seconds ``bulk_create`` took."""
        from django.core.management import call_command

        from queueprio.broker.publish import keep_message
        from queueprio.conf import settings as qp
        from queueprio.models import Job

        self.use()
        call_command("migrate", verbosity=0)
        threshold = timedelta(seconds=float(qp.AGING_THRESHOLD_SECONDS))
        template = template_message()

        def row(i: int, *, due: bool) -> Job:
            if due:  # queued an hour ago, a few ms apart: due since ``threshold`` after that
                since = self.start - WAITED + timedelta(milliseconds=i)
                next_at = since + threshold
                priority = DUE_PRIORITY
            else:  # queued just now; the sweep looks at them only in an hour or two
                since = self.start - timedelta(milliseconds=i)
                next_at = self.start + timedelta(hours=1, milliseconds=i)
                priority = 3 + i % 7
            task_id = str(uuid.uuid4())
            job = Job(
                task_id=task_id,
                task_name=TASK,
                args=ARGS,
                kwargs=KWARGS,
                queue="queueprio",
                requested_priority=priority,
                effective_priority=priority,
                priority_source="call",
                queued_at=since,
                aging_since=since,
                published_at=since,
                next_aging_at=next_at,
                token=uuid.uuid4().hex,
            )
            # Every copy republishes the job's stored message (the ledger keeps Celery's own).
            keep_message(job, template.with_headers(id=task_id, root_id=task_id))
            return job

        step = self.size // self.due  # the due rows spread through the ledger, as in a real one
        rows = [row(i, due=i % step == 0 and i // step < self.due) for i in range(self.size)]

        def create() -> None:
            created = Job.objects.bulk_create(rows, batch_size=1_000)  # both engines return the new pks
            self.due_pks = [job.pk for job in created if job.next_aging_at < self.start]

        seconds = timed(create)
        if len(self.due_pks) != self.due or Job.objects.queued().count() != self.size:
            raise SystemExit(f"backlog built wrong: {len(self.due_pks)} due rows, {Job.objects.count()} in all")
        return seconds

    def reset(self, queue: str) -> None:
        """Empty the queue and put the due rows back as they were before any sweep."""
        from django.db.models import F

        from queueprio.conf import settings as qp
        from queueprio.models import AgingStep, Job

        self.use()
        purge_queue(queue)
        AgingStep.objects.all().delete()  # the database is ours: every step is the bench's
        threshold = timedelta(seconds=float(qp.AGING_THRESHOLD_SECONDS))
        reset = Job.objects.filter(pk__in=self.due_pks, state="queued").update(
            generation=1,
            effective_priority=DUE_PRIORITY,
            published_at=F("queued_at"),
            next_aging_at=F("queued_at") + threshold,
        )
        if reset != self.due:
            raise SystemExit(f"reset {reset} due rows, expected {self.due}")
        vacuum()


def template_message() -> Any:
    """Celery's own message for ``TASK(*ARGS, **KWARGS)``, captured as a submission does (not sent)."""
    from celery import current_app

    from queueprio.submission.jobs import capture

    task = current_app.tasks[TASK]
    with task.app.producer_or_acquire() as producer:
        return capture(task, producer, ARGS, KWARGS, task_id=str(uuid.uuid4()), priority=DUE_PRIORITY, options={})


def postgres() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


def vacuum() -> None:
    """PostgreSQL: clear the dead row versions the last sweep left and refresh statistics (autovacuum's job)."""
    from django.db import connection

    if postgres():
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE queueprio_job, queueprio_agingstep")


def due_query(batch: int) -> Any:
    """The sweep's own query, as ``queueprio.maintenance.aging._sweep_batch`` builds it."""
    from django.db import connection
    from django.utils import timezone

    from queueprio.models import Job

    due = Job.objects.due_for_aging(timezone.now()).order_by("next_aging_at")
    if connection.features.has_select_for_update_skip_locked:
        due = due.select_for_update(skip_locked=True)
    return due[:batch]


def show_plan(batch: int) -> tuple[bool, str]:
    """Print the due-rows query's plan; return whether it reads the partial index, and the plan."""
    from django.db import transaction

    with transaction.atomic():  # SELECT … FOR UPDATE needs a transaction
        plan = due_query(batch).explain()
        analyzed = due_query(batch).explain(analyze=True) if postgres() else ""
    label = "EXPLAIN" if postgres() else "EXPLAIN QUERY PLAN"
    print(f"{label} (due rows, LIMIT {batch}):")
    print("    " + plan.replace("\n", "\n    "))
    if analyzed:
        print("EXPLAIN ANALYZE:")
        print("    " + analyzed.replace("\n", "\n    "))
    return INDEX in plan, plan


class Stages:
    """Splits one sweep's time into ``STAGES`` by wrapping the calls it makes."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] += seconds
        self.counts[stage] += 1

    @contextmanager
    def installed(self) -> Iterator[None]:
        from unittest import mock

        from django.db import connection

        from queueprio.broker import pipeline, publish
        from queueprio.models.job_queries import JobQuerySet

        stages = self
        send, due_for_aging, commit = publish.send, JobQuerySet.due_for_aging, connection.commit
        send_confirmed = pipeline.send_confirmed

        class TimedDue(JobQuerySet):
            """The due rows' QuerySet: times its evaluation (the SELECT and building the rows)."""

            def _fetch_all(self) -> None:
                if self._result_cache is not None:
                    return
                start = time.perf_counter()
                super()._fetch_all()
                stages.add("select", time.perf_counter() - start)

        def timed_due(qs: JobQuerySet, now: datetime) -> JobQuerySet:
            due = due_for_aging(qs, now)
            due.__class__ = TimedDue  # clones (order_by, select_for_update, slicing) keep the class
            return due

        def timed_send(*a: Any, **kw: Any) -> None:
            start = time.perf_counter()
            try:
                send(*a, **kw)
            finally:
                stages.add("publish", time.perf_counter() - start)

        def timed_send_confirmed(*a: Any, **kw: Any) -> Any:
            # The sweep publishes a batch's copies pipelined (pipeline.send_confirmed).
            start = time.perf_counter()
            try:
                return send_confirmed(*a, **kw)
            finally:
                stages.add("publish", time.perf_counter() - start)

        def timed_commit() -> None:
            start = time.perf_counter()
            try:
                commit()
            finally:
                stages.add("transaction", time.perf_counter() - start)

        def timed_sql(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            verb = sql.lstrip().split(None, 1)[0].upper()
            if verb == "SELECT":  # the due rows: timed with their fetch, in TimedDue
                return execute(sql, params, many, context)
            start = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                stage = "row writes" if verb in ("UPDATE", "INSERT", "DELETE") else "transaction"
                stages.add(stage, time.perf_counter() - start)

        with ExitStack() as stack:
            stack.enter_context(mock.patch.object(publish, "send", timed_send))
            stack.enter_context(mock.patch.object(pipeline, "send_confirmed", timed_send_confirmed))
            stack.enter_context(mock.patch.object(JobQuerySet, "due_for_aging", timed_due))
            stack.enter_context(mock.patch.object(connection, "commit", timed_commit))
            stack.enter_context(connection.execute_wrapper(timed_sql))
            yield


def sweep_once(ledger: Ledger, queue: str, *, stages: Stages | None = None) -> float:
    """Reset, run one sweep (instrumented if ``stages``), check it stepped exactly the due jobs."""
    from queueprio.maintenance.aging import sweep

    ledger.reset(queue)
    reports = []
    if stages is None:
        seconds = timed(lambda: reports.append(sweep()))
    else:
        with stages.installed():
            seconds = timed(lambda: reports.append(sweep()))
    report = reports[0]
    depth = queue_depth(queue)
    if not (report.due == report.aged == depth == ledger.due) or report.failed:
        print(
            f"\nWRONG SWEEP: {ledger.due} due, the sweep saw {report.due}, aged {report.aged}, "
            f"failed {report.failed}; the queue holds {depth}",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_LOST)
    return seconds


def child(args: argparse.Namespace) -> int:
    from bench.submit import check_confirms

    env = production_env(log_level=args.log_level)
    load_before = load_average()
    with (
        throwaway_vhost("queueprio-agingbench") as vhost,
        isolated_django(vhost, database_url=args.database_url, env=env) as tmp,
    ):
        from django.conf import settings
        from django.db import connection
        from django.utils import timezone

        from project.celery import app
        from queueprio.conf import settings as qp

        if args.batch_size:
            settings.QUEUEPRIO_AGING_BATCH_SIZE = args.batch_size
        batch = int(qp.AGING_BATCH_SIZE)
        database = "PostgreSQL" if postgres() else "SQLite"
        confirms = check_confirms(app)
        queue = settings.QUEUEPRIO_QUEUE
        purge_queue(queue)
        print(f"\n# {database}")
        print_table(
            ["what", "value"],
            [
                *environment(),
                ("vhost / queue", f"{vhost} / {queue}"),
                ("publisher confirms", confirms),
                ("task-sent events", "on" if app.conf.task_send_sent_event else "off"),
                ("aging", f"threshold {qp.AGING_THRESHOLD_SECONDS:g} s, max boost {qp.AGING_MAX_BOOST}"),
                ("batch size", str(batch)),
                ("log level", args.log_level),
                ("load average before", load_before),
            ],
        )

        # One database per backlog, so that the repetitions can alternate between them.
        first = connection.settings_dict["NAME"]
        if postgres():
            names = database_names(first, args.backlog_sizes)
        else:
            names = {n: first if i == 0 else str(tmp / f"db-{n}.sqlite3") for i, n in enumerate(args.backlog_sizes)}
        start = timezone.now()
        ledgers = [Ledger(size, args.due, names[size], start) for size in args.backlog_sizes]
        sizes: dict[str, Any] = {}
        for ledger in ledgers:
            built = ledger.build()
            print(f"\n## {ledger.size:,} queued jobs, {args.due:,} due (backlog built in {built:.1f} s)")
            ledger.reset(queue)  # on PostgreSQL: vacuumed and analysed, as autovacuum would
            index_used, plan = show_plan(batch)
            print(f"{INDEX} used: {'yes' if index_used else 'NO'}", flush=True)
            sweep_once(ledger, queue)  # warm-up: broker connection, producer pool, caches
            sizes[str(ledger.size)] = {"times": [], "breakdowns": [], "index_used": index_used, "plan": plan}

        print(file=sys.stderr)
        for i in range(args.repeat):
            # Alternate the backlogs, rotating which goes first, so load changes hit them alike.
            for ledger in ledgers[i % len(ledgers) :] + ledgers[: i % len(ledgers)]:
                r = sizes[str(ledger.size)]
                r["times"].append(sweep_once(ledger, queue))
                stages = Stages()
                total = sweep_once(ledger, queue, stages=stages)
                stages.seconds["other"] = total - sum(stages.seconds.values())
                r["breakdowns"].append(dict(stages.seconds))
                r["counts"] = dict(stages.counts)
                print(
                    f"  run {i + 1}/{args.repeat}, {ledger.size:,} queued: sweep {r['times'][-1]:.3f} s; "
                    f"instrumented {total:.3f} s = "
                    + ", ".join(f"{s} {stages.seconds[s] * 1000:.0f} ms" for s in STAGES),
                    file=sys.stderr,
                    flush=True,
                )
        for r in sizes.values():
            r["median"] = statistics.median(r["times"])
            r["stages"] = {s: statistics.median(b.get(s, 0.0) for b in r["breakdowns"]) for s in STAGES}

        load_after = load_average()
        print(f"\n## {database}: one sweep of {args.due:,} due jobs (median of {args.repeat})")
        print_table(
            ["queued jobs", "sweep s", "min s", "max s", *(f"{s} ms" for s in STAGES), f"{INDEX}"],
            [
                [
                    f"{int(size):,}",
                    f"{r['median']:.3f}",
                    f"{min(r['times']):.3f}",
                    f"{max(r['times']):.3f}",
                    *(f"{r['stages'][s] * 1000:.0f}" for s in STAGES),
                    "used" if r["index_used"] else "NOT used",
                ]
                for size, r in sizes.items()
            ],
        )
        counts = sizes[str(args.backlog_sizes[-1])]["counts"]
        print(
            f"(stages: medians of {args.repeat} instrumented sweeps; per sweep {counts.get('select', 0)} due-rows "
            f"SELECTs, {counts.get('publish', 0)} publishes, {counts.get('row writes', 0)} UPDATE/INSERTs, "
            f"{counts.get('transaction', 0)} BEGIN/SAVEPOINT/RELEASE/COMMITs)"
        )
        print(f"load average before / after: {load_before} / {load_after}", flush=True)
        result = {"database": database, "sizes": sizes, "load": [load_before, load_after]}
        args.child_json.write_text(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return child(args) if args.child_json else parent(args)


if __name__ == "__main__":
    sys.exit(main())
