"""Live queue depth from the ledger: per priority, per band, oldest eligible wait."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from queueprio.models import Band
from queueprio.observability import depth
from tests.support.ledger import make_job

T = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
RANGES = [("urgent", 1, 2), ("normal", 3, 5), ("background", 6, 10)]


@pytest.mark.parametrize(("priority", "band"), [(1, "urgent"), (2, "urgent"), (3, "normal"), (10, "background")])
def test_band_of__by_range(priority: int, band: str) -> None:
    assert depth.band_of(priority, RANGES) == band


def test_band_of__outside_every_range_is_blank() -> None:
    assert depth.band_of(4, [("urgent", 1, 2)]) == ""


def test_fold_bands__a_job_keeps_its_admitted_band_else_goes_by_requested_priority() -> None:
    rows = [
        {"band_name": "", "requested_priority": 1, "queued": 2, "oldest": T},
        {"band_name": "urgent", "requested_priority": 4, "queued": 1, "oldest": T - timedelta(minutes=5)},
        {"band_name": "", "requested_priority": 7, "queued": 3, "oldest": None},
    ]
    folded = {q.name: q for q in depth.fold_bands(rows, RANGES)}
    assert (folded["urgent"].queued, folded["urgent"].oldest_since) == (3, T - timedelta(minutes=5))
    assert (folded["normal"].queued, folded["normal"].oldest_since) == (0, None)
    assert (folded["background"].queued, folded["background"].oldest_since) == (3, None)


def test_queued__oldest_wait_never_negative() -> None:
    assert depth.Queued("1", 1, T).oldest_wait(T - timedelta(seconds=1)) == 0.0
    assert depth.Queued("1", 0, None).oldest_wait(T) is None


@pytest.mark.django_db
def test_by_priority__counts_queued_jobs_by_effective_priority_with_zeros() -> None:
    make_job(queued_at=T - timedelta(minutes=3), priority=5, effective=3)
    make_job(queued_at=T - timedelta(minutes=1), priority=3)
    make_job(queued_at=T - timedelta(minutes=9), priority=3, state="started")
    # A job whose ETA is still ahead is queued but not yet waiting.
    make_job(queued_at=T - timedelta(minutes=30), priority=3, eta=T + timedelta(minutes=5))
    found = {q.name: q for q in depth.by_priority(T)}
    assert list(found) == [str(p) for p in range(1, 11)]
    assert found["3"].queued == 3
    assert found["3"].oldest_wait(T) == 180.0
    assert (found["5"].queued, found["5"].oldest_since) == (0, None)


@pytest.mark.django_db
def test_band_ranges__admin_rows_win_over_the_configured_defaults(settings) -> None:
    settings.QUEUEPRIO_BANDS = (("now", 1, 4, None, None, None), ("later", 5, 10, None, None, None))
    Band.objects.all().delete()
    assert depth.band_ranges() == [("now", 1, 4), ("later", 5, 10)]
    Band.objects.create(name="all", most_urgent=1, least_urgent=10)
    assert depth.band_ranges() == [("all", 1, 10)]


@pytest.mark.django_db
def test_by_band__every_band_listed_even_when_empty() -> None:
    make_job(queued_at=T - timedelta(seconds=30), priority=1)
    bands = {q.name: q for q in depth.by_band(T)}
    assert set(bands) >= {name for name, _, _ in depth.band_ranges()}
    assert sum(q.queued for q in bands.values()) == 1
