"""How a job's fields read in the admin's list and page: short, to the second, first lines only."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.html import format_html

from ..models import FINISHED_STATES, JobState
from ..observability.units import format_duration

#: Characters of the input summary and of the error's first line shown in the list.
SUMMARY_LENGTH = 60
ERROR_LENGTH = 90
#: Characters of a task id shown in the list (its whole id is the cell's tooltip and the link).
SHORT_ID = 8

FAILED_STATES = (JobState.FAILED, JobState.PUBLISH_FAILED)


def short(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def input_summary(args: Any, kwargs: Any) -> str:
    """The input file (a converter's first argument), else the arguments in short."""
    if isinstance(args, list) and args and isinstance(args[0], str):
        return short(args[0], SUMMARY_LENGTH)
    parts = [json.dumps(a, default=str) for a in (args or [])]
    parts += [f"{k}={json.dumps(v, default=str)}" for k, v in (kwargs or {}).items() if v not in (None, {}, [])]
    return short(", ".join(parts), SUMMARY_LENGTH) if parts else "–"


def to_the_second(value: datetime | None) -> str:
    """``2026-01-05 12:00:07`` in the site's time zone; ``–`` for none."""
    if value is None:
        return "–"
    return f"{timezone.localtime(value):%Y-%m-%d %H:%M:%S}"


def eligible_at(queued_at: datetime, eta: datetime | None) -> datetime:
    """When the job could run: queued, or its ETA if later (a countdown is not waiting)."""
    return max(queued_at, eta) if eta is not None else queued_at


def waited(queued_at: datetime, eta: datetime | None, started_at: datetime | None, state: str) -> str:
    """From eligible to started; for a job still waiting, how long so far (``…`` after it)."""
    since = eligible_at(queued_at, eta)
    if started_at is not None:
        return format_duration(max(0.0, (started_at - since).total_seconds()))
    if state == JobState.QUEUED:
        return format_duration(max(0.0, (timezone.now() - since).total_seconds())) + " …"
    return "–"


def ran(started_at: datetime | None, finished_at: datetime | None, state: str) -> str:
    """From started to finished; for a job still running, how long so far."""
    if started_at is None:
        return "–"
    if finished_at is not None:
        return format_duration(max(0.0, (finished_at - started_at).total_seconds()))
    if state not in FINISHED_STATES:
        return format_duration(max(0.0, (timezone.now() - started_at).total_seconds())) + " …"
    return "–"


def error_line(error: str, state: str) -> str:
    """The first line of a failed job's error (the traceback stays on the job's page)."""
    if state not in FAILED_STATES or not error.strip():
        return ""
    return short(error.strip().splitlines()[0], ERROR_LENGTH)


def progress_html(progress: float | None, note: str) -> str:
    """A running job's progress as a bar and its percentage, with its note; ``–`` when it reports none."""
    if progress is None:
        return format_html("{}", note) if note else "–"
    percent = round(max(0.0, min(1.0, progress)) * 100)
    return format_html(
        '<progress max="100" value="{}" title="{}%">{}%</progress> {}%{}',
        percent,
        percent,
        percent,
        percent,
        format_html(' <span class="quiet">{}</span>', note) if note else "",
    )


def standing(state: str, *, position: int | None, eta: datetime | None, now: datetime) -> str:
    """Where a waiting job stands, in a few words: jobs ahead of it, held, or when it is due."""
    if state == JobState.QUEUED:
        return "–" if position is None else f"{position} ahead"
    if state == JobState.HELD:
        held = "held: its band is at its running limit"
        return held if position is None else f"{held}, {position} held ahead"
    if state == JobState.SCHEDULED and eta is not None:
        return f"due in {format_duration(max(0.0, (eta - now).total_seconds()))}"
    return ""
