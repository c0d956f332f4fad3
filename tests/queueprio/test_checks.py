"""System checks warn about settings that would defeat priority; the project itself is clean."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kombu import Queue

from project.celery import app
from queueprio.checks import check_celery_settings


@pytest.fixture
def conf() -> Iterator[object]:
    saved = {
        k: app.conf[k]
        for k in (
            "worker_prefetch_multiplier",
            "task_acks_late",
            "task_reject_on_worker_lost",
            "task_queues",
            "broker_url",
        )
    }
    yield app.conf
    app.conf.update(saved)


def ids() -> list[str]:
    return [message.id for message in check_celery_settings()]


def test_checks__project_settings_are_clean() -> None:
    assert ids() == []


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("worker_prefetch_multiplier", 4, "queueprio.W001"),
        ("task_acks_late", False, "queueprio.W002"),
        ("task_reject_on_worker_lost", False, "queueprio.W003"),
        ("task_queues", (Queue("queueprio"),), "queueprio.W004"),
        ("broker_url", "redis://127.0.0.1:6379/0", "queueprio.W005"),
    ],
)
def test_checks__each_bad_setting_is_reported(conf: object, setting: str, value: object, expected: str) -> None:
    app.conf[setting] = value
    assert ids() == [expected]
