"""The conformance suite: every Celery feature queueprio claims to keep, against a real RabbitMQ and
real worker processes. After every test the books must balance: each band's admission counter
equals the ledger's queued jobs in it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.db.models import Count
from django.utils import timezone

from queueprio.maintenance.aging import sweep
from queueprio.models import WAITING_STATES, Band, Job, JobState

pytestmark = [pytest.mark.broker]


def band_books() -> dict[str, tuple[int, int]]:
    """``band -> (counter, ledger)`` for every band's two counters: waiting jobs and running ones."""

    def counted(*states: str) -> dict[int, int]:
        rows = Job.objects.filter(state__in=states, band__isnull=False).values_list("band_id")
        return dict(rows.annotate(n=Count("pk")).values_list("band_id", "n"))

    waiting, running = counted(*WAITING_STATES), counted(JobState.STARTED)
    books = {}
    for band in Band.objects.all():
        books[f"{band.name} waiting"] = (band.queued, waiting.get(band.pk, 0))
        books[f"{band.name} running"] = (band.running, running.get(band.pk, 0))
    return books


@pytest.fixture(autouse=True)
def books_balance(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "django_db_setup" in request.fixturenames or request.node.get_closest_marker("django_db"):
        books = band_books()
        assert {name: pair for name, pair in books.items() if pair[0] != pair[1]} == {}, books


def age_now(task_ids: list[str], *, waited: float = 5.0) -> int:
    """Make the jobs due for an aging step as if they had waited ``waited`` seconds; run the sweep.

    The test process's threshold must be short (the ``aged`` fixture sets 1 s)."""
    past = timezone.now() - timedelta(seconds=waited)
    Job.objects.filter(task_id__in=task_ids, state=JobState.QUEUED).update(
        aging_since=past, queued_at=past, published_at=past, next_aging_at=timezone.now()
    )
    return sweep().aged


@pytest.fixture
def aged(settings: object) -> None:
    """Aging forced: a one-second threshold in this process (the sweep runs here, by hand)."""
    settings.QUEUEPRIO_AGING_THRESHOLD_SECONDS = 1  # type: ignore[attr-defined]
    settings.QUEUEPRIO_AGING_MAX_BOOST = 9  # type: ignore[attr-defined]


@pytest.fixture
def out(tmp_path: Path) -> str:
    """The side-effect file the tasks append one line per run to."""
    return str(tmp_path / "effects.txt")
