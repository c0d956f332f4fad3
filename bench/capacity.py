"""The figures docs/scaling.md's capacity model is built from, the ones bench/submit.py and
bench/worker.py don't give:

    .venv/bin/python bench/capacity.py [--database-url URL] [--messages N] [--commits N] [--rows N]

(m) RabbitMQ messages/s on one node with publisher confirms: persistent messages of about the
    size of a queueprio job (700 bytes) to a durable priority queue, one at a time (publish, wait
    for the ack: what one submission does) and pipelined (a window of 100 unconfirmed: what a
    batch and the aging sweep do). In a throwaway vhost, purged and deleted afterwards.
(p) PostgreSQL commits/s: a one-row ``UPDATE`` and ``COMMIT`` per transaction, from one
    connection and from four threads (four processes' worth of connections), on a throwaway table
    in the database ``--database-url`` names (the machine's PostgreSQL by default), dropped afterwards.
(c) a typical conversion's own cost: ``csv_to_json`` of a ``--rows``-row CSV (about 100 KB at the
    default), in this process, median of 20: what a worker process spends per job on top of the
    no-op job's overhead (bench/worker.py).

Submissions/s per web process come from bench/submit.py and no-op jobs/s per worker process from
bench/worker.py (the same machine, the same hour, are quoted in docs/scaling.md).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import amqp
from kombu import Connection, Exchange, Producer, Queue

BROKER = "amqp://guest:guest@127.0.0.1:5672"
BODY = b"x" * 700


def rabbit_rates(messages: int) -> tuple[float, float]:
    from bench.common import throwaway_vhost

    queue = Queue("capacity", Exchange(""), routing_key="capacity", durable=True, max_priority=10)
    with throwaway_vhost("queueprio-capacity") as vhost:
        # One at a time: kombu's confirm_publish makes each publish wait for its ack.
        with Connection(f"{BROKER}/{vhost}", transport_options={"confirm_publish": True}) as conn:
            channel = conn.channel()
            queue.bind(channel).declare()
            producer = Producer(channel)
            began = time.perf_counter()
            for _ in range(messages):
                producer.publish(BODY, routing_key="capacity", delivery_mode=2, priority=5, mandatory=True)
            one_at_a_time = messages / (time.perf_counter() - began)
            queue.bind(channel).purge()

        # Pipelined: a raw confirm-mode channel, up to 100 messages unconfirmed at a time.
        with Connection(f"{BROKER}/{vhost}") as conn:
            raw = conn.connection.channel()
            upto, single = 0, set()

            def on_ack(tag: int, multiple: bool) -> None:
                nonlocal upto
                if multiple:
                    upto = max(upto, tag)
                else:
                    single.add(tag)

            raw.events["basic_ack"].add(on_ack)
            raw.confirm_select()
            sent = 0
            began = time.perf_counter()

            def confirmed() -> int:
                return upto + sum(1 for tag in single if tag > upto)

            while confirmed() < messages:
                while sent < messages and sent - confirmed() < 100:
                    raw.basic_publish(amqp.Message(BODY, priority=5, delivery_mode=2), "", "capacity")
                    sent += 1
                conn.connection.drain_events(timeout=10)
            pipelined = messages / (time.perf_counter() - began)
            queue.bind(conn.default_channel).purge()
        return one_at_a_time, pipelined


def commit_rates(url: str, commits: int) -> tuple[float, float]:
    import psycopg

    parsed = urlparse(url)
    dsn = dict(host=parsed.hostname, port=parsed.port or 5432, user=parsed.username, dbname=parsed.path.lstrip("/"))
    with psycopg.connect(**dsn, autocommit=True) as conn:  # type: ignore[arg-type]
        conn.execute("CREATE TABLE IF NOT EXISTS capacity_probe (id int PRIMARY KEY, n bigint)")
        conn.execute("INSERT INTO capacity_probe SELECT g, 0 FROM generate_series(1, 4) g ON CONFLICT DO NOTHING")

    def run(row: int, count: int) -> None:
        with psycopg.connect(**dsn) as conn:  # type: ignore[arg-type]
            for _ in range(count):
                conn.execute("UPDATE capacity_probe SET n = n + 1 WHERE id = %s", [row])
                conn.commit()

    try:
        began = time.perf_counter()
        run(1, commits)
        one = commits / (time.perf_counter() - began)
        threads = [threading.Thread(target=run, args=(row, commits // 4)) for row in range(1, 5)]
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        four = (commits // 4) * 4 / (time.perf_counter() - began)
    finally:
        with psycopg.connect(**dsn, autocommit=True) as conn:  # type: ignore[arg-type]
            conn.execute("DROP TABLE IF EXISTS capacity_probe")
    return one, four


def conversion_seconds(rows: int) -> tuple[float, int]:
    from converters.formats.tabular import csv_to_json

    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "in.csv", Path(tmp) / "out.json"
        with open(source, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "name", "email", "amount", "created"])
            for i in range(rows):
                writer.writerow([i, f"name {i}", f"user{i}@example.org", f"{i * 1.5:.2f}", "2026-11-30T06:00:00Z"])
        times = []
        for _ in range(20):
            began = time.perf_counter()
            csv_to_json(source, target)
            times.append(time.perf_counter() - began)
        return statistics.median(times), source.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=1500)
    args = parser.parse_args()

    import os
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()

    one, pipelined = rabbit_rates(args.messages)
    print(f"(m) RabbitMQ, one node, confirms: {one:,.0f} msg/s one at a time, {pipelined:,.0f} msg/s pipelined")
    single, four = commit_rates(args.database_url, args.commits)
    print(f"(p) PostgreSQL commits/s: {single:,.0f} from one connection, {four:,.0f} from four")
    seconds, size = conversion_seconds(args.rows)
    print(f"(c) csv_to_json of {size / 1024:,.0f} KiB ({args.rows} rows): {seconds * 1000:.1f} ms in-process")


if __name__ == "__main__":
    main()
