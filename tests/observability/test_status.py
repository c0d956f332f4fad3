"""``manage.py queueprio status``: the same numbers as a table and as JSON."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone
from kombu import Connection

from queueprio.cli.status import render
from queueprio.cli.table import format_table
from queueprio.observability import rollup
from tests.support.ledger import make_job
from tests.support.polling import wait_for
from tests.support.worker import running_worker


def status(*args: str) -> str:
    out = io.StringIO()
    call_command("queueprio", "status", *args, stdout=out)
    return out.getvalue()


def test_format_table__pads_columns_and_right_aligns_numbers() -> None:
    assert format_table(["name", "n"], [("a", 1), ("long", 10)], right=(1,)) == "name   n\n----  --\na      1\nlong  10"


def test_render__summarises_queue_and_workers() -> None:
    data = {
        "at": "2026-01-05T12:00:00+00:00",
        "priorities": [
            {"priority": 1, "queued": 2, "oldest_wait_seconds": 75.0, "p95_wait_seconds": 0.5, "started_last_hour": 9}
        ],
        "bands": [
            {"band": "urgent", "queued": 2, "held": 0, "running": 1, "max_running": None, "oldest_wait_seconds": 75.0},
            {"band": "background", "queued": 7, "held": 5, "running": 2, "max_running": 2, "oldest_wait_seconds": 9.0},
        ],
        "running": [
            {
                "task_id": "0123456789abcdef",
                "task": "convert_csv",
                "priority": 1,
                "worker": "w1@host",
                "running_seconds": 3.5,
                "progress": 0.35,
                "progress_note": "rows 3500/10000",
            }
        ],
        "next": [
            {
                "task_id": "fedcba9876543210",
                "task": "convert_json",
                "priority": 2,
                "position": 0,
                "starts_in_seconds": 1.5,
            },
            {
                "task_id": "aaaaaaaabbbbbbbb",
                "task": "convert_xml",
                "priority": 9,
                "position": 1,
                "starts_in_seconds": None,
            },
        ],
        "workers": ["w1@host"],
    }
    text = render(data)
    assert "       1       2       1m 15s         500 ms             9" in text
    assert "urgent           2     0        1       1m 15s" in text
    assert "background       7     5    2 / 2        9.0 s" in text  # at its running limit, 5 held
    assert "convert_csv 01234567         1  3.5 s  [#######.............]  35% rows 3500/10000" in text
    assert "convert_json fedcba98         2      0        1.5 s" in text
    assert "convert_xml aaaaaaaa          9      1    no worker" in text
    assert "queued: 2   workers: 1 answering: w1@host" in text


@pytest.mark.django_db
def test_status__json_has_depth_oldest_wait_and_p95() -> None:
    # Given two queued jobs at priority 2 and a job that waited 4 s at priority 2 ten minutes ago
    now = timezone.now()
    make_job(queued_at=now - timedelta(seconds=30), priority=2)
    make_job(queued_at=now - timedelta(seconds=5), priority=2)
    t = now - timedelta(minutes=10)
    make_job(
        queued_at=t,
        priority=2,
        state="succeeded",
        started_at=t + timedelta(seconds=4),
        finished_at=t + timedelta(seconds=5),
    )
    rollup.rollup(now)
    # When the status is asked for as JSON (no broker here: no workers answer)
    data = json.loads(status("--json"))
    # Then it shows all three
    p2 = data["priorities"][1]
    assert (p2["priority"], p2["queued"], p2["started_last_hour"]) == (2, 2, 1)
    assert 30 <= p2["oldest_wait_seconds"] < 90
    assert p2["p95_wait_seconds"] == pytest.approx(4.0)
    assert {b["band"]: b["queued"] for b in data["bands"]}["urgent"] == 2
    assert data["workers"] == []


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_status__lists_the_workers_that_answer(tmp_path: Path, broker: Connection) -> None:
    with running_worker(tmp_path) as worker:
        # "Connected to amqp" comes before the worker's remote-control consumer starts.
        wait_for(worker.answers_ping, timeout=30, message="the worker to answer a ping")
        text = status()
    assert f"workers: 1 answering: {worker.name.split('@')[0]}@" in text
    assert "priority  queued  oldest wait  p95 wait (1h)  started (1h)" in text


class Interrupt:
    """``time.sleep`` that lets ``frames - 1`` refreshes through, then is Ctrl-C."""

    def __init__(self, frames: int) -> None:
        self.left, self.slept = frames, []

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.left -= 1
        if self.left <= 0:
            raise KeyboardInterrupt


@pytest.mark.django_db
def test_status_watch__redraws_in_place_until_ctrl_c(monkeypatch) -> None:
    # Given a job queued between the first and the second refresh
    from queueprio.cli import status as status_module

    interrupt = Interrupt(frames=2)

    def sleep_then_queue(seconds: float) -> None:
        make_job(queued_at=timezone.now(), priority=4)
        interrupt(seconds)

    monkeypatch.setattr(status_module.time, "sleep", sleep_then_queue)
    monkeypatch.setattr(status_module.health, "responding_workers", lambda app: [])
    # When status is watched
    text = status("--watch", "--interval", "0.5")
    # Then each frame starts by taking the cursor home and clearing the screen (no scrolling
    # pile of tables), the second shows the new job, and Ctrl-C ends it quietly
    frames = text.split(status_module.CLEAR)[1:]
    assert len(frames) == 2
    assert "queued: 0" in frames[0]
    assert "queued: 1" in frames[1]
    assert interrupt.slept == [0.5, 0.5]
    assert "(refreshing every 0.5 s; Ctrl-C stops)" in frames[0]


@pytest.mark.django_db
def test_status_watch_json__one_object_per_line(monkeypatch) -> None:
    from queueprio.cli import status as status_module

    monkeypatch.setattr(status_module.time, "sleep", Interrupt(frames=3))
    monkeypatch.setattr(status_module.health, "responding_workers", lambda app: [])
    lines = [line for line in status("--watch", "--json").splitlines() if line]
    assert len(lines) == 3
    assert all(json.loads(line)["workers"] == [] for line in lines)
    assert status_module.CLEAR not in "".join(lines)
