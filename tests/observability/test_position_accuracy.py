"""How good the expected start is: a mixed backlog on a real worker, every waiting job's predicted
start against its actual start. Prints the median and 90th-percentile error (docs/observability.md)."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
from django.utils import timezone
from kombu import Connection

from queueprio.models import Job, JobState
from queueprio.observability.position import expected_start
from tests.support.polling import lines, wait_for
from tests.support.semantics_tasks import slow
from tests.support.worker import running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]

PRIORITIES = [9, 3, 5, 1, 7, 5, 2, 9, 4, 6, 8, 3, 5, 1, 9, 7, 2, 6, 4, 8]
RUNTIME = 0.4


def test_expected_start__error_on_a_mixed_backlog(tmp_path: Path, broker: Connection) -> None:
    out = str(tmp_path / "out.txt")
    with running_worker(tmp_path, concurrency=2):
        # Some history first: the estimate uses each task's recent mean run time
        for i in range(4):
            slow.apply_async((f"warm{i}", out, RUNTIME), priority=5)
        wait_for(lambda: lines(out).count("done warm3") == 1 and len(lines(out)) >= 8, timeout=60)
        # A job of the same kind on each process, so that the backlog is whole when it is measured
        blockers = [slow.apply_async((f"block{i}", out, RUNTIME), priority=1) for i in range(2)]
        wait_for(lambda: sum(line.startswith("start block") for line in lines(out)) == 2, timeout=30)
        ids = [slow.apply_async((f"j{i}", out, RUNTIME), priority=p).id for i, p in enumerate(PRIORITIES)]
        now = timezone.now()
        predicted = {
            job.task_id: expected_start(job, now=now, workers=2)
            for job in Job.objects.filter(task_id__in=ids, state=JobState.QUEUED)
        }
        wait_for(lambda: Job.objects.filter(task_id__in=ids, state=JobState.SUCCEEDED).count() == len(ids), timeout=120)
    del blockers
    actual = dict(Job.objects.filter(task_id__in=ids).values_list("task_id", "started_at"))
    errors = [abs((actual[task_id] - when).total_seconds()) for task_id, when in predicted.items() if when]
    horizon = max((actual[t] - now).total_seconds() for t in ids)
    signed = [(actual[task_id] - when).total_seconds() for task_id, when in predicted.items() if when]
    print(f"\nsigned errors (actual - predicted): {sorted(round(s, 2) for s in signed)}")
    median, p90 = statistics.median(errors), statistics.quantiles(errors, n=10)[-1]
    print(f"\nexpected start, {len(errors)} jobs over {horizon:.1f} s: median error {median:.2f} s, p90 {p90:.2f} s")
    assert len(errors) == len(ids)  # every job was still waiting when measured
    assert p90 < 0.25 * horizon, (median, p90, horizon)
