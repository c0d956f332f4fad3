"""The worker benchmark's tasks: a no-op with one side effect (its start time appended to a file),
as a queueprio task and as two plain Celery tasks, and a per-process count of SQL statements."""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from typing import Any

from celery import shared_task
from celery.signals import worker_process_init, worker_process_shutdown

from queueprio import PriorityTask

#: Set by bench/worker.py: where each pool process writes its statement counts when it exits.
COUNT_DIR = os.environ.get("QUEUEPRIO_BENCH_COUNT_DIR", "")
_counts: Counter[str] = Counter()
#: The key under which a pool process also writes the CPU milliseconds it used.
CPU = "cpu ms"


def effect(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{time.time():.6f}\n".encode())
    finally:
        os.close(fd)


@shared_task(name="bench.noop", base=PriorityTask)
def noop(path: str) -> None:
    effect(path)


@shared_task(name="bench.plain_noop", ignore_result=True)
def plain_noop(path: str) -> None:
    effect(path)


@shared_task(name="bench.plain_noop_result")
def plain_noop_result(path: str) -> None:
    effect(path)


_TABLE = re.compile(r'(?:INTO|UPDATE|FROM)\s+"?(\w+)"?', re.IGNORECASE)


def kind(sql: str) -> str:
    """``UPDATE queueprio_job``, ``BEGIN``: the statement's verb and the first table it names."""
    words = sql.lstrip().split(None, 1)
    verb = words[0].upper() if words else "?"
    table = _TABLE.search(sql)
    if not table or verb == "BEGIN":
        return verb
    return f"{verb} {table.group(1).removeprefix('django_celery_results_').removeprefix('queueprio_')}"


def _count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    _counts[kind(sql)] += 1
    return execute(sql, params, many, context)


@worker_process_init.connect
def _start_counting(**kwargs: Any) -> None:
    if COUNT_DIR:
        from django.db import connection

        connection.execute_wrappers.append(_count)


@worker_process_shutdown.connect
def _save_counts(**kwargs: Any) -> None:
    if COUNT_DIR:
        times = os.times()
        with open(os.path.join(COUNT_DIR, f"{os.getpid()}.json"), "w") as out:
            json.dump({**_counts, CPU: (times.user + times.system) * 1000}, out)
