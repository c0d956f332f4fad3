"""Submission throughput: queueprio's ``convert``/``convert_batch`` against plain Celery, same run.

    .venv/bin/python bench/submit.py [--jobs N] [--batch N] [--repeat R] [--database-url URL]
                                     [--debug] [--log-level LEVEL] [--profile DIR] [--check]

Three phases, each warmed up once and then timed ``--repeat`` times (the median is reported):

(a) plain Celery: a plain ``@app.task`` (not queueprio's base class) sent with
    ``apply_async(args, kwargs, priority=5, queue=<the priority queue>)``, one call per job;
(b) ``converters.convert("csv_to_json", "in.csv", priority=5)``, one call per job: validation,
    one ledger row, one publish;
(c) ``converters.convert_batch("csv_to_json", sources, priority=5)`` with ``--batch`` sources
    in one call.

No worker runs: only submission is measured. Every phase publishes with publisher confirms
(the project's ``confirm_publish``, verified on a live channel before measuring), so each
job counted is one RabbitMQ has taken; the queue depth (and for b and c the ledger) is checked
against the number of jobs after every repetition, and a mismatch aborts the run.

The repetitions are interleaved (a b c, b c a, c a b, ...) so that a change in background load
(other processes on the machine, the same broker) hits every phase alike instead of skewing the
ratios. Django runs with ``DEBUG`` off, as in production (``--debug`` to measure it on: every
query is then also recorded). Everything happens in a throwaway vhost and a throwaway SQLite file
(see ``bench.common``). Targets: b/a >= 0.8, c/a >= 1.5.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Started as ``python bench/submit.py``: import the project from the repository root, and
    # not this directory's modules as top-level ones (a bare ``common`` could shadow a package).
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.common import (
    Phase,
    environment,
    isolated_django,
    load_average,
    print_table,
    production_env,
    profiled,
    purge_queue,
    queue_depth,
    throwaway_vhost,
    timed,
    verdict,
)

TARGET_B = 0.8  # convert() one at a time: at least 80% of plain Celery's rate
TARGET_C = 5.0  # convert_batch(): at least 5x plain Celery's rate (issue 13; was 1.5)
TARGET_RAW = 0.4  # convert_batch(): at least 40% of the raw kombu publish rate without confirms
TARGET_D = 0.7  # convert() with the urgent quota consulted and an idempotency key: 70%
PRIORITY = 5
CONVERTER = "csv_to_json"
SOURCE = "in.csv"
#: What queueprio publishes for a ``convert(CONVERTER, SOURCE)`` after ``prepare_arguments``;
#: the plain task sends the same, so the messages (and so the broker's work) are the same size.
PLAIN_ARGS = [SOURCE, "in.json"]
PLAIN_KWARGS: dict[str, Any] = {"options": {}}
#: Shell exit status when the broker (or the ledger) did not hold the number of jobs sent.
EXIT_LOST = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Submission throughput of queueprio against plain Celery, measured in the same run."
    )
    parser.add_argument("--jobs", type=int, default=2_000, help="jobs per timed repetition of (a) and (b) [2000]")
    parser.add_argument(
        "--batch", type=int, default=10_000, help="sources in the one convert_batch call of (c) [10000]"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions per phase; the median is reported [3]")
    parser.add_argument("--warmup", type=int, default=200, help="jobs sent once per phase before timing [200]")
    parser.add_argument(
        "--database-url",
        default=None,
        help="run against this (throwaway!) database, e.g. PostgreSQL, instead of SQLite",
    )
    parser.add_argument("--debug", action="store_true", help="run Django with DEBUG on (records every query)")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        help="queueprio/converters log level [WARNING]; at INFO every submission writes a line to stderr",
    )
    parser.add_argument(
        "--profile", type=Path, default=None, help="then run each phase once more under cProfile, to DIR"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument(
        "--no-raw", action="store_true", help="skip the raw kombu phases and the batch of distinct sources"
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="also the controls (b0): convert without the two-round-trip transaction, (c0): a batch "
        "sending a task-sent event message per job",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rates and ratios to this file")
    args = parser.parse_args(argv)
    for name in ("jobs", "batch", "repeat"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


@dataclass
class Bench:
    """The three phases' submitters, bound to the isolated app and queue."""

    queue: str
    plain: Any  # the plain Celery task
    raw_seconds: float = 0.0  # the last raw phase's own timing

    def send_plain(self, n: int) -> list[str]:
        ids = []
        for _ in range(n):
            ids.append(
                self.plain.apply_async(args=PLAIN_ARGS, kwargs=PLAIN_KWARGS, priority=PRIORITY, queue=self.queue).id
            )
        return ids

    def send_convert(self, n: int) -> list[str]:
        from converters import convert

        ids = []
        for _ in range(n):
            ids.append(convert(CONVERTER, SOURCE, priority=PRIORITY).id)
        return ids

    def send_convert_atomic(self, n: int) -> list[str]:
        """(b0): ``convert`` with ``BEGIN`` and ``COMMIT`` as round trips of their own (``atomic()``), the
        control of ``queueprio.submission.roundtrips`` (the same as (b) on SQLite)."""
        from queueprio.submission import roundtrips

        roundtrips.ENABLED = False
        try:
            return self.send_convert(n)
        finally:
            roundtrips.ENABLED = True

    def send_batch_event_each(self, n: int) -> list[str]:
        """(c0): ``convert_batch`` with a task-sent event message per job, as before they were chunked."""
        from queueprio.broker import pipeline

        chunk, pipeline.EVENT_CHUNK = pipeline.EVENT_CHUNK, 1
        try:
            return self.send_batch(n)
        finally:
            pipeline.EVENT_CHUNK = chunk

    def send_admitted_dedup(self, n: int) -> list[str]:
        """(d): ``convert`` with a caller key (the urgent quota is consulted) and an idempotency key (dedup)."""
        from kombu.utils.uuid import uuid

        from converters import convert

        ids = []
        for _ in range(n):
            ids.append(convert(CONVERTER, SOURCE, priority=PRIORITY, caller_key="bench", idempotency_key=uuid()).id)
        return ids

    def send_batch(self, n: int) -> list[str]:
        from converters import convert_batch

        return convert_batch(CONVERTER, [SOURCE] * n, priority=PRIORITY).ids

    def send_batch_distinct(self, n: int) -> list[str]:
        """(e): ``convert_batch`` of ``n`` sources that all differ (each call's message is its own)."""
        from converters import convert_batch

        return convert_batch(CONVERTER, [f"in-{i}.csv" for i in range(n)], priority=PRIORITY).ids

    def raw_messages(self, n: int) -> list[tuple[str, bytes, dict[str, Any]]]:
        """``n`` messages as plain Celery would send them (same body size), built before timing."""
        from kombu.utils import json as kombu_json
        from kombu.utils.uuid import uuid

        plain = self.plain
        # Celery's own protocol-2 message for the call; the body encoded as its JSON serializer does.
        template = plain.app.amqp.as_task_v2(uuid(), plain.name, PLAIN_ARGS, PLAIN_KWARGS)
        body = kombu_json.dumps(template.body).encode()
        out = []
        for _ in range(n):
            task_id = uuid()
            out.append((task_id, body, {**template.headers, "id": task_id, "root_id": task_id}))
        return out

    def send_raw(self, n: int, *, confirm: str) -> list[str]:
        """Raw kombu: ``n`` prebuilt messages on one channel; ``confirm`` is ``each``, ``pipelined`` or ``none``.

        ``none`` ends with one round trip (a passive declare) so the figure includes the broker
        having read every message; ``pipelined`` publishes all, then waits for the acks once.
        """
        from django.conf import settings
        from kombu import Connection, Producer

        from queueprio.broker.confirms import ConfirmTracker

        messages = self.raw_messages(n)
        options = {"confirm_publish": confirm == "each"}
        start = time.perf_counter()
        with Connection(settings.CELERY_BROKER_URL, transport_options=options) as conn:
            channel = conn.default_channel
            tracker = ConfirmTracker(channel) if confirm == "pipelined" else None
            producer = Producer(channel, auto_declare=False)
            for task_id, body, headers in messages:
                producer.publish(
                    body,
                    routing_key=self.queue,
                    headers=headers,
                    priority=PRIORITY,
                    content_type="application/json",
                    content_encoding="utf-8",
                    correlation_id=task_id,
                )
            if tracker is not None:
                tracker.wait(conn, 60)
                if tracker.pending or tracker.nacked:
                    raise SystemExit("raw pipelined publish: not every message was confirmed")
            else:
                channel.queue_declare(self.queue, passive=True)
        self.raw_seconds = time.perf_counter() - start
        if confirm == "none":
            # Unconfirmed messages may still be on their way from the channel to the queue (the
            # lag is why confirms exist): wait for them, untimed, before the count is checked.
            deadline = time.monotonic() + 30
            while queue_depth(self.queue) < n and time.monotonic() < deadline:
                time.sleep(0.05)
        return [task_id for task_id, _, _ in messages]


@dataclass
class Run:
    """A phase and how to drive it."""

    phase: Phase
    send: Callable[[int], list[str]]
    ledger: bool  # whether every job must also have a ledger row
    #: The seconds the send itself measured (the raw phases build their messages before timing).
    clock: Callable[[], float] | None = None


def raw_runs(bench: Bench, n: int) -> list[Run]:
    """The broker's own rates on the same vhost and queue, and a batch whose sources all differ."""

    def raw(confirm: str) -> Callable[[int], list[str]]:
        return lambda jobs: bench.send_raw(jobs, confirm=confirm)

    return [
        Run(Phase("e", "convert_batch, distinct sources", n), bench.send_batch_distinct, ledger=True),
        Run(Phase("r-each", "raw kombu, each confirmed", n), raw("each"), False, lambda: bench.raw_seconds),
        Run(Phase("r-pipe", "raw kombu, pipelined confirms", n), raw("pipelined"), False, lambda: bench.raw_seconds),
        Run(Phase("r-none", "raw kombu, no confirms", n), raw("none"), False, lambda: bench.raw_seconds),
    ]


def register_plain_task(app: Any) -> Any:
    """A plain Celery task on the project's app: the baseline queueprio is compared with."""

    @app.task(name="bench.plain")
    def plain(source: str, target: str | None = None, options: dict[str, Any] | None = None) -> None:
        """Never runs: no worker consumes the queue during the benchmark."""

    return plain


def check_confirms(app: Any) -> str:
    """Make sure publishes wait for RabbitMQ's confirm, in the config and on a live channel."""
    from amqp.channel import Channel

    options = app.conf.broker_transport_options or {}
    if options.get("confirm_publish") is not True:
        raise SystemExit(f"publisher confirms are off (broker_transport_options={options!r}): the figures would lie")
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        # py-amqp swaps in the confirming publish per channel when the connection asks for it.
        if not (conn.connection.confirm_publish and channel.basic_publish.__func__ is Channel.basic_publish_confirm):
            raise SystemExit("the transport option is set but the channel does not wait for confirms")
    return "on (verified on a live channel)"


def ledger_rows(task_ids: list[str]) -> int:
    from queueprio.models import Job

    return sum(Job.objects.filter(task_id__in=task_ids[i : i + 2_000]).count() for i in range(0, len(task_ids), 2_000))


def reset(queue: str, task_ids: Iterable[str]) -> None:
    """Empty the queue and drop the ledger rows a run created, so every repetition starts alike.

    The rows' places in their admission band are given back too, as a cancellation would.
    """
    from django.db.models import Count

    from queueprio.models import Band, Job

    purge_queue(queue)
    ids = list(task_ids)
    # Only our own rows, by id: with --database-url the database may hold other rows.
    for start in range(0, len(ids), 2_000):
        rows = Job.objects.filter(task_id__in=ids[start : start + 2_000])
        for band, count in rows.filter(state="queued").values_list("band").annotate(n=Count("pk")):
            Band.objects.release(band, count)
        rows.delete()


def measure(run: Run, *, queue: str, label: str) -> None:
    """One timed repetition of ``run``, checked against the broker and the ledger, then undone."""
    phase = run.phase
    ids: list[str] = []
    seconds = timed(lambda: ids.extend(run.send(phase.jobs)))
    if run.clock is not None:
        seconds = run.clock()
    depth = queue_depth(queue)
    rows = ledger_rows(ids) if run.ledger else phase.jobs
    if not depth == rows == len(ids) == phase.jobs:
        print(
            f"\nLOST JOBS in phase {phase.name}: sent {phase.jobs}, got {len(ids)} ids, "
            f"queue holds {depth}, ledger holds {rows}",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_LOST)
    phase.seconds.append(seconds)
    print(f"  {label} {phase.name}: {phase.jobs} jobs in {seconds:.3f} s", file=sys.stderr, flush=True)
    reset(queue, ids)


def profile_phase(run: Run, *, queue: str, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"submit-{run.phase.name}.prof"
    ids: list[str] = []
    stats = profiled(lambda: ids.extend(run.send(run.phase.jobs)), out)
    reset(queue, ids)
    print(f"\n## cProfile, phase {run.phase.name} ({run.phase.jobs} jobs; full stats in {out})")
    stats.sort_stats("tottime").print_stats(15)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    env = production_env(log_level=args.log_level, debug=args.debug)
    load_before = load_average()
    with throwaway_vhost() as vhost, isolated_django(vhost, database_url=args.database_url, env=env) as tmp:
        from django.conf import settings

        from project.celery import app

        confirms = check_confirms(app)
        (tmp / "files" / SOURCE).write_text("id,name,qty\n1,apple,3\n2,pear,5\n3,plum,7\n")
        if not args.no_raw:  # the sources of phase e, which must exist
            for i in range(args.batch):
                (tmp / "files" / f"in-{i}.csv").write_text("id,name,qty\n1,apple,3\n")
        queue = settings.QUEUEPRIO_QUEUE
        bench = Bench(queue=queue, plain=register_plain_task(app))
        purge_queue(queue)
        runs = [
            Run(Phase("a", "plain Celery apply_async", args.jobs), bench.send_plain, ledger=False),
            Run(Phase("b", "converters.convert", args.jobs), bench.send_convert, ledger=True),
            Run(Phase("c", "converters.convert_batch", args.batch), bench.send_batch, ledger=True),
            Run(Phase("d", "convert + quota + idempotency key", args.jobs), bench.send_admitted_dedup, ledger=True),
        ]
        if args.control:
            runs.append(
                Run(Phase("b0", "convert, BEGIN/COMMIT on their own", args.jobs), bench.send_convert_atomic, True)
            )
            runs.append(
                Run(
                    Phase("c0", "convert_batch, an event message per job", args.batch),
                    bench.send_batch_event_each,
                    True,
                )
            )
        if not args.no_raw:
            runs += raw_runs(bench, args.batch)

        print("## Environment")
        print_table(
            ["what", "value"],
            [
                *environment(),
                ("Django DEBUG", str(settings.DEBUG)),
                ("vhost / queue", f"{vhost} / {queue}"),
                ("publisher confirms", confirms),
                ("task-sent events", "on" if app.conf.task_send_sent_event else "off"),
                ("log level", args.log_level),
                ("load average before", load_before),
            ],
        )
        print(flush=True)

        # Warm-up: connections, producer pool, queue declarations, ORM and import caches.
        for run in runs:
            reset(queue, run.send(min(args.warmup, run.phase.jobs)))
        for i in range(args.repeat):
            # Rotate the order so no phase always runs first (or right after the big batch).
            for run in runs[i % len(runs) :] + runs[: i % len(runs)]:
                measure(run, queue=queue, label=f"run {i + 1}/{args.repeat}")
        load_after = load_average()
        a, b, c, d = (run.phase for run in runs[:4])
        raw = {run.phase.name: run.phase for run in runs[4:]}  # and the control (b0)

        print(f"## Submission throughput (median of {args.repeat}; every job confirmed by RabbitMQ)")
        print_table(
            ["phase", "jobs", "seconds", "jobs/s", "min jobs/s", "max jobs/s"],
            [
                [
                    f"({p.name}) {p.label}",
                    p.jobs,
                    f"{p.median_seconds:.3f}",
                    f"{p.rate:,.0f}",
                    f"{min(p.rates):,.0f}",
                    f"{max(p.rates):,.0f}",
                ]
                for p in (a, b, c, d, *raw.values())
            ],
        )
        ratio_b, ratio_c, ratio_d = b.rate / a.rate, c.rate / a.rate, d.rate / a.rate
        ratios = [
            ("b/a (convert vs plain)", ratio_b, TARGET_B),
            ("c/a (convert_batch vs plain)", ratio_c, TARGET_C),
            ("d/a (admission + dedup vs plain)", ratio_d, TARGET_D),
        ]
        if "b0" in raw:
            ratios.append(("b0/a (control: BEGIN/COMMIT on their own)", raw["b0"].rate / a.rate, TARGET_B))
        if "c0" in raw:
            ratios.append(("c0/a (control: an event message per job)", raw["c0"].rate / a.rate, TARGET_C))
        if "e" in raw:
            ratios.append(("e/a (batch of distinct sources vs plain)", raw["e"].rate / a.rate, TARGET_C))
        if "r-none" in raw:
            ratios.append(("c/r-none (batch vs raw kombu, no confirms)", c.rate / raw["r-none"].rate, TARGET_RAW))
        print()
        print_table(
            ["ratio", "value", "target", "result"],
            [[name, f"{value:.2f}", f">= {target}", verdict(value, target)] for name, value, target in ratios],
        )
        if args.json is not None:
            engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
            rates = {p.name: p.rate for p in (a, b, c, d, *raw.values())}
            summary = {"engine": engine, "rates": rates, "ratios": [list(r) for r in ratios]}
            args.json.write_text(json.dumps(summary, indent=1))
        print(f"\nload average before / after: {load_before} / {load_after}")

        if args.profile is not None:
            for run in runs:
                profile_phase(run, queue=queue, out_dir=args.profile)

        missed = any(value < target for _, value, target in ratios)
        return 1 if (missed and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
