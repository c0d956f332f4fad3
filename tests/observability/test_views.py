"""The HTTP endpoints: /queueprio/health/ against a real broker and worker, /queueprio/metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client
from kombu import Connection
from prometheus_client.parser import text_string_to_metric_families

from tests.support.polling import wait_for
from tests.support.tasks import record
from tests.support.worker import running_worker

HEALTH, METRICS = "/queueprio/health/", "/queueprio/metrics"


def assert_nothing_secret(body: str, *also: str) -> None:
    for secret in ("amqp", "guest", django_settings.TEST_VHOST, django_settings.SECRET_KEY, "/work", "sqlite", *also):
        assert secret not in body, f"{secret!r} leaked into the health report"


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_health__200_with_broker_database_and_a_worker(tmp_path: Path, broker: Connection, client: Client) -> None:
    # Given one running worker that answers remote control, when the health endpoint is asked
    with running_worker(tmp_path, concurrency=1) as worker:
        wait_for(worker.answers_ping, timeout=30, message="the worker to answer a ping")
        response = client.get(HEALTH)
    # Then every check passes, and the report names no host, URL, path or secret
    assert response.status_code == 200, response.content
    report = response.json()
    assert report["healthy"] is True
    assert report["checks"] == {"broker": True, "database": True, "workers": 1}
    assert set(report["queued"]) == {str(p) for p in range(1, 11)}
    assert set(report["oldest_wait_seconds"]) == {"urgent", "normal", "background"}
    assert_nothing_secret(response.content.decode(), worker.name.split("@")[0])
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_health__503_when_no_worker_answers_and_depth_still_shown(
    tmp_path: Path, broker: Connection, client: Client
) -> None:
    record.apply_async(args=["waiting", str(tmp_path / "out.txt")], priority=2)
    response = client.get(HEALTH)
    assert response.status_code == 503
    report = response.json()
    assert report["checks"] == {"broker": True, "database": True, "workers": 0}
    assert report["queued"]["2"] == 1
    assert report["queued_by_band"]["urgent"] == 1
    assert report["broker_messages"] == 1
    assert_nothing_secret(response.content.decode())


@pytest.mark.django_db
def test_health__only_get(client: Client) -> None:
    assert client.post(HEALTH).status_code == 405


@pytest.mark.django_db
def test_metrics__prometheus_text_format(client: Client) -> None:
    response = client.get(METRICS)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert {"queueprio_queued_jobs", "queueprio_oldest_wait_seconds", "queueprio_jobs_submitted"} <= names


def test_metrics__without_the_prometheus_extra_says_what_to_install(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    # prometheus_client not installed (None in sys.modules makes its import fail, as a missing package does)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "queueprio.observability.prometheus", raising=False)
    response = client.get(METRICS)
    assert response.status_code == 501
    assert b'pip install "queueprio[prometheus]"' in response.content


@pytest.fixture
def healthy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A health check that passes without asking a broker: these tests are about URLs and methods."""
    from queueprio.observability.health import Health

    monkeypatch.setattr("queueprio.views.health_checks.check", lambda now: Health(True, True, ["w@h"], 0.0))


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/queueprio/health/", "/queueprio/health"])
def test_health__with_or_without_the_slash_get_and_head(client: Client, healthy: None, path: str) -> None:
    # No redirect either way (a probe may not follow one); HEAD answers the same status, no body
    assert client.get(path).status_code == 200
    head = client.head(path)
    assert (head.status_code, head.content) == (200, b"")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/queueprio/metrics", "/queueprio/metrics/"])
def test_metrics__with_or_without_the_slash_get_and_head(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert b"queueprio_queued_jobs" in response.content
    head = client.head(path)
    assert (head.status_code, head["Content-Type"]) == (200, response["Content-Type"])
    # Still nothing else
    assert client.post(path).status_code == 405


@pytest.mark.django_db
def test_admin_view_site__leads_to_a_page_that_links_everything(admin_client: Client) -> None:
    # The admin's "View site" link goes to "/", which used to be a 404
    index = admin_client.get("/admin/").content.decode()
    assert '<a href="/">View site</a>' in index
    home = admin_client.get("/")
    assert home.status_code == 200
    for href in ("/admin/queueprio/dashboard/", "/admin/queueprio/job/", "/queueprio/health/", "/queueprio/metrics"):
        assert f'href="{href}"' in home.content.decode()
