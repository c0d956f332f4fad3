"""Where is my job, as people see it: with a real worker running a job that reports progress and a
backlog behind it, the admin's job list and page, the dashboard, ``queueprio status`` and the
Prometheus scrape all show the running job's progress, the waiting jobs' places and the next to
start with an expected start, and the bands' running counts."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from kombu import Connection

from queueprio.models import Job
from tests.support.polling import wait_for
from tests.support.semantics_tasks import add, progressing
from tests.support.worker import running_worker

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def test_running_progress_places_and_next_to_start_everywhere(
    tmp_path: Path, broker: Connection, admin_client: Client
) -> None:
    out = str(tmp_path / "out.txt")
    with running_worker(tmp_path, concurrency=1) as worker:
        wait_for(worker.answers_ping, timeout=30, message="the worker to answer")
        running = progressing.apply_async((out, 100, 0.1), priority=5)  # 10 s, reporting as it goes
        wait_for(
            lambda: Job.objects.filter(task_id=running.id, state="started", progress__gt=0).exists(),
            timeout=60,
            message="the job to report progress",
        )
        # A backlog behind it on the one process: 9s, then 3s, then a 1
        backlog = [add.apply_async((i, i, out), priority=p) for i, p in enumerate([9, 9, 3, 3, 1])]
        ids = [r.id for r in backlog]

        # The admin's list: the running job's bar, each waiting job's place
        page = admin_client.get("/admin/queueprio/job/").content.decode()
        assert re.search(r'<progress max="100" value="\d+"', page)
        assert "step " in page  # its note
        expected_ahead = {ids[4]: 0, ids[2]: 1, ids[3]: 2, ids[0]: 3, ids[1]: 4}
        for task_id, ahead in expected_ahead.items():
            row = page[page.index(f'title="{task_id}"') :]
            assert f"{ahead} ahead" in row[: row.index("</tr>")], task_id

        # The job page: its place and expected start on the worker's one process
        last = Job.objects.get(task_id=ids[1])
        detail = admin_client.get(f"/admin/queueprio/job/{last.pk}/change/").content.decode()
        assert "4 ahead" in detail
        assert "on 1 worker processes" in detail

        # The dashboard: running now with its percentage, next to start in RabbitMQ's order
        board = admin_client.get("/admin/queueprio/dashboard/").content.decode()
        running_card = board[board.index('id="qp-running"') : board.index('id="qp-next"')]
        assert "sem.progressing" in running_card
        assert "%" in running_card
        next_card = board[board.index('id="qp-next"') :]
        names = re.findall(r'title="([0-9a-f-]{36})">sem\.add', next_card)
        assert names == [ids[4], ids[2], ids[3], ids[0], ids[1]]

        # queueprio status --json: the same running job and the same order, with estimates
        text = StringIO()
        call_command("queueprio", "status", "--json", stdout=text)
        data = json.loads(text.getvalue())
        assert [r["task_id"] for r in data["running"]] == [running.id]
        assert 0 < data["running"][0]["progress"] < 1
        assert [n["task_id"] for n in data["next"]] == [ids[4], ids[2], ids[3], ids[0], ids[1]]
        starts = [n["starts_in_seconds"] for n in data["next"]]
        assert all(s is not None for s in starts)
        assert starts == sorted(starts)
        assert {b["band"]: b["running"] for b in data["bands"]}["normal"] == 1

        # Prometheus: the band's running gauge
        scrape = Client().get("/queueprio/metrics").content.decode()
        assert 'queueprio_band_running_jobs{band="normal"} 1.0' in scrape
        assert 'queueprio_band_waiting_jobs{band="normal"} 2.0' in scrape
