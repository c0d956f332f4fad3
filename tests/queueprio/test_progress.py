"""A running job's progress, seen from another process while it runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from kombu import Connection

import queueprio
from tests.support.polling import lines, wait_for
from tests.support.semantics_tasks import progressing
from tests.support.worker import running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def test_progress__visible_mid_run_and_throttled(tmp_path: Path, broker: Connection) -> None:
    out = str(tmp_path / "out.txt")
    result = progressing.apply_async((out, 40, 0.1), priority=5)  # 4 s, a report every 100 ms
    seen: list[float] = []
    with running_worker(tmp_path):

        def midway() -> bool:
            (info,) = queueprio.jobs([result.id])
            if info is not None and info.progress is not None and info.state == "started":
                seen.append(info.progress)
            return len({round(p, 2) for p in seen}) >= 2

        wait_for(midway, timeout=60, message="two different progress values while it runs")
        wait_for(lambda: lines(out)[-1:] == ["done"], timeout=60)
    assert 0 <= min(seen) < max(seen) < 1  # several values, all while it ran
    # Throttled: 40 reports over 4 s reached the table at most once per interval (0.5 s), not 40 times
    [writes] = [int(line.split()[1]) for line in lines(out) if line.startswith("writes ")]
    assert 2 <= writes <= 4.0 / 0.5 + 1, writes
    info = queueprio.job(result.id)
    assert info is not None
    assert info.progress_note.startswith("step ")


def test_control__without_the_throttle_every_report_is_a_write(tmp_path: Path, broker: Connection) -> None:
    out = str(tmp_path / "out.txt")
    progressing.apply_async((out, 10, 0.02), priority=5)
    with running_worker(tmp_path, env={"QUEUEPRIO_TEST_PROGRESS_INTERVAL": "0"}):
        wait_for(lambda: lines(out)[-1:] == ["done"], timeout=60)
    # The counter sees each of the 10 reports (so the 2..9 above is the throttle, not a blind counter)
    assert [line for line in lines(out) if line.startswith("writes ")] == ["writes 10"]


def test_progress__outside_a_run_does_nothing() -> None:
    assert queueprio.progress(0.5) is False
