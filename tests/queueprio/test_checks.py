"""System checks name what a project lacks and settings that defeat priority; configure() leaves none."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from celery import Celery
from kombu import Queue

from project.celery import app
from queueprio.celery import configure
from queueprio.checks import check_celery_app, check_celery_settings, check_urls

ROOT = Path(__file__).resolve().parents[2]


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
            "task_routes",
        )
    }
    yield app.conf
    app.conf.update(saved)


def ids() -> list[str]:
    return [message.id for message in check_celery_settings()]


def test_checks__project_settings_are_clean() -> None:
    assert ids() == []


def test_checks__a_broker_that_is_not_rabbitmq(conf: object, settings: object) -> None:
    # Both places: Celery before 5.7 reads CELERY_BROKER_URL from Django settings ahead of a
    # broker_url set on app.conf, and 5.7 the other way round.
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"  # type: ignore[attr-defined]
    app.conf["broker_url"] = "redis://127.0.0.1:6379/0"
    assert ids() == ["queueprio.W005"]


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("worker_prefetch_multiplier", 4, "queueprio.W001"),
        ("task_acks_late", False, "queueprio.W002"),
        ("task_reject_on_worker_lost", False, "queueprio.W003"),
        ("task_queues", (Queue("queueprio"),), "queueprio.W004"),
    ],
)
def test_checks__each_bad_setting_is_reported(conf: object, setting: str, value: object, expected: str) -> None:
    app.conf[setting] = value
    assert ids() == [expected]


# --- what a new project lacks -------------------------------------------------------------


def test_checks__a_project_that_only_added_queueprio_is_told_each_missing_piece(tmp_path: Path) -> None:
    # Given a fresh `django-admin startproject` whose only change is "queueprio" in INSTALLED_APPS
    django_admin = Path(sys.executable).with_name("django-admin")
    subprocess.run([str(django_admin), "startproject", "mysite", str(tmp_path)], check=True)
    settings_py = tmp_path / "mysite" / "settings.py"
    text = settings_py.read_text()
    settings_py.write_text(
        text.replace("'django.contrib.staticfiles',", "'django.contrib.staticfiles',\n    'queueprio',")
    )
    # When it runs `manage.py check`
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "mysite.settings"}
    checked = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    # Then it fails, naming each piece with an id and a hint that says what to write
    assert checked.returncode == 1, checked.stdout + checked.stderr
    output = checked.stderr
    found = sorted(set(re.findall(r"\((queueprio\.[EW]\d{3})\)", output)))
    assert found == [
        "queueprio.E001",  # django_celery_beat
        "queueprio.E002",  # no Celery app
        "queueprio.W001",  # prefetch
        "queueprio.W002",  # acks late
        "queueprio.W003",  # reject on worker lost
        "queueprio.W004",  # queue arguments
        "queueprio.W006",  # routes
        "queueprio.W007",  # beat scheduler
        "queueprio.W008",  # result backend
        "queueprio.W010",  # confirms
        "queueprio.W011",  # URLs
    ]
    assert "Traceback" not in output
    assert 'app = Celery("mysite")' in output  # E002's hint names the project
    assert "queueprio.celery.configure(app)" in output
    assert 'path("queueprio/", include("queueprio.urls"))' in output
    assert "CELERY_WORKER_PREFETCH_MULTIPLIER = 1" in output


def test_configure__fills_in_what_the_user_did_not_set_and_their_settings_win() -> None:
    # Given an app whose source sets acks late off and its own routes
    source = SimpleNamespace(CELERY_TASK_ACKS_LATE=False, CELERY_TASK_ROUTES={"other.*": {"queue": "other"}})
    custom = Celery("custom", set_as_current=False)
    custom.config_from_object(source, namespace="CELERY")
    configure(custom)
    conf = custom.conf
    # Then the user's values stand and the rest is queueprio's
    assert conf.task_acks_late is False
    assert conf.task_routes == {"other.*": {"queue": "other"}}
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_reject_on_worker_lost is True
    assert [q.name for q in conf.task_queues] == ["queueprio", "queueprio.critical"]
    assert all(q.queue_arguments == {"x-max-priority": 10} for q in conf.task_queues)
    assert conf.task_default_queue == conf.task_default_exchange == conf.task_default_routing_key == "queueprio"
    assert conf.broker_transport_options == {"confirm_publish": True}
    assert conf.task_send_sent_event is True
    assert conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
    assert conf.result_backend == "queueprio.worker.results:LedgerBackend"


def test_configure__on_an_app_whose_configuration_is_already_loaded() -> None:
    custom = Celery("late", set_as_current=False)
    custom.conf.worker_prefetch_multiplier = 2  # loads the configuration, and is the user's own
    configure(custom)
    assert (custom.conf.worker_prefetch_multiplier, custom.conf.task_acks_late) == (2, True)


def test_checks__a_user_setting_that_defeats_priority_says_to_remove_it(conf: object) -> None:
    app.conf["task_routes"] = {"other.*": {"queue": "other"}}
    [message] = check_celery_settings()
    assert message.id == "queueprio.W006"
    assert "'queueprio.celery.route_task'" in message.hint
    assert "CELERY_TASK_ROUTES" in message.hint


def test_checks__an_app_not_configured_by_queueprio() -> None:
    custom = Celery("handmade")
    try:
        assert [m.id for m in check_celery_app()] == ["queueprio.W009"]
    finally:
        app.set_current()
        del custom


def test_checks__missing_url_include(settings: object) -> None:
    settings.ROOT_URLCONF = "tests.support.urls_without_queueprio"  # type: ignore[attr-defined]
    assert [m.id for m in check_urls()] == ["queueprio.W011"]
