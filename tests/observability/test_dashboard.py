"""The admin dashboard: its numbers, and the real page rendered by headless Chromium."""

from __future__ import annotations

import os
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from queueprio.models import TaskPriority
from queueprio.observability import dashboard, rollup
from queueprio.observability.aggregate import Stat
from tests.support import chromium as browser
from tests.support.ledger import make_aging_step, make_job, make_rejection
from tests.support.worker import ROOT

DASHBOARD = "/admin/queueprio/dashboard/"
SCREENSHOT = ROOT / "docs" / "dashboard.png"


def seed(now: datetime) -> None:
    """A plausible last hour: a backlog, finished jobs with waits growing with priority, refusals, aging."""
    rng = random.Random(7)
    for priority, queued in ((1, 1), (2, 3), (3, 6), (5, 14), (7, 9), (9, 22), (10, 5)):
        for _ in range(queued):
            make_job(queued_at=now - timedelta(seconds=rng.uniform(5, 60 * priority)), priority=priority)
    for minute in range(55, 0, -1):
        for _ in range(rng.randint(2, 9)):
            priority = rng.choice((1, 2, 3, 5, 5, 7, 9, 10))
            queued = now - timedelta(minutes=minute, seconds=rng.uniform(0, 59))
            started = queued + timedelta(seconds=rng.expovariate(1 / (2 * priority**1.6)))
            state = "failed" if rng.random() < 0.05 else "succeeded"
            finished = started + timedelta(seconds=rng.uniform(0.2, 4))
            make_job(queued_at=queued, priority=priority, state=state, started_at=started, finished_at=finished)
    for reason, count in (("queue_full", 7), ("invalid_input", 3), ("path_outside_root", 2), ("quota_exceeded", 1)):
        for i in range(count):
            make_rejection(at=now - timedelta(minutes=2 * i + 1), reason=reason)
    for i in range(6):
        job = make_job(queued_at=now - timedelta(minutes=20 + i), priority=9, effective=8)
        make_aging_step(job, at=now - timedelta(minutes=14 + i), from_priority=9, to_priority=8)
    TaskPriority.objects.update_or_create(
        task_name="converters.csv_to_json", defaults={"code_default": 5, "priority": 3}
    )
    TaskPriority.objects.update_or_create(task_name="converters.image_to_webp", defaults={"code_default": 7})
    rollup.rollup(now)


def test_minute_series__fills_missing_minutes_with_zero() -> None:
    t = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    stat = Stat()
    stat.counts.update(succeeded=3, failed=1)
    points = dashboard.minute_series({t + timedelta(minutes=1): stat}, t, t + timedelta(minutes=3))
    assert points == [("12:00", 0.0), ("12:01", 4.0), ("12:02", 0.0)]


@pytest.mark.django_db
def test_context__live_depth_hour_figures_and_defaults() -> None:
    now = timezone.now()
    seed(now)
    context = dashboard.context(now)
    assert context["queued_total"] == 60 + 6
    assert context["hour"]["aged"] == 6
    assert dict(context["rejections"])["queue_full"] == 7
    assert {row.priority for row in context["priority_rows"]} >= {1, 5, 10}
    defaults = {row["task_name"]: row for row in context["task_defaults"]}
    assert defaults["converters.csv_to_json"]["effective"] == 3
    assert defaults["converters.image_to_webp"]["effective"] == 7
    for chart in ("depth_chart", "wait_chart", "throughput_chart", "rejections_chart"):
        assert str(context[chart]).startswith('<svg class="qp-chart"')


@pytest.mark.django_db(transaction=True)
def test_dashboard__renders_in_headless_chromium(chromium: str, live_server, settings, tmp_path: Path) -> None:
    # Given an hour of activity and a superuser whose browser session the test opens
    settings.ROOT_URLCONF = "tests.observability.dashboard_urls"
    seed(timezone.now())
    get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")
    url = f"{live_server.url}/test-login/boss/?next={DASHBOARD}"
    # When Chromium loads the admin dashboard through the live server
    dom = browser.run(chromium, tmp_path / "profile-dom", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # Then the page is the dashboard (not the login form) with its four charts in the DOM
    assert "Queue dashboard" in dom.stdout
    assert 'id="login-form"' not in dom.stdout
    assert dom.stdout.count('<svg class="qp-chart"') == 4
    assert dom.stdout.count('class="qp-bar"') >= 10
    assert 'http-equiv="refresh" content="15"' in dom.stdout
    # And a screenshot of it is a real PNG of some substance
    png = tmp_path / "dashboard.png"
    shot = browser.run(chromium, tmp_path / "profile-shot", f"--screenshot={png}", "--window-size=1280,2000", url)
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 30_000
    if os.environ.get("QUEUEPRIO_WRITE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(png, SCREENSHOT)
