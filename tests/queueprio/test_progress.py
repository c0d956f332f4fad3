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
        wait_for(lambda: lines(out) == ["done"], timeout=60)
    assert 0 <= min(seen) < max(seen) < 1  # several values, all while it ran
    info = queueprio.job(result.id)
    assert info is not None
    assert info.progress_note.startswith("step ")


def test_progress__outside_a_run_does_nothing() -> None:
    assert queueprio.progress(0.5) is False
