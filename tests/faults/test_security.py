"""Who may see and change what: staff login, change permissions, CSRF, and endpoints that leak nothing.

Already covered elsewhere, not repeated here: the dashboard's own permission and anonymous
redirect (tests/observability/test_admin_metrics.py), the change view of task priorities for a
view-only user (tests/queueprio/test_admin.py), the health report naming no host, URL or
secret with a working broker (tests/observability/test_views.py), and Flower's basic auth in
the compose stack (tests/deploy/test_compose.py).
"""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission, User
from django.test import Client

from queueprio.models import Band, TaskPriority, UrgentQuota
from tests.support.rabbit_node import celery_broker

pytestmark = pytest.mark.django_db

ADMIN_PAGES = [
    "/admin/",
    "/admin/queueprio/",
    "/admin/queueprio/job/",
    "/admin/queueprio/taskpriority/",
    "/admin/queueprio/band/",
    "/admin/queueprio/urgentquota/",
    "/admin/queueprio/rejection/",
    "/admin/queueprio/dashboard/",
]


def logged_in(*perms: str, staff: bool = True, superuser: bool = False, csrf: bool = False) -> Client:
    user = User.objects.create_user("someone", password="pw", is_staff=staff, is_superuser=superuser)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


@pytest.mark.parametrize("url", ADMIN_PAGES[:-1])  # the dashboard's own test covers it
def test_admin__anonymous_is_sent_to_the_login(client: Client, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("url", ADMIN_PAGES)
def test_admin__a_logged_in_user_who_is_not_staff_is_sent_to_the_login(url: str) -> None:
    response = logged_in("view_job", "change_band", "view_dashboard", staff=False).get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def band_form(band: Band, max_queued: int) -> dict[str, str]:
    """The band changelist's list_editable form, as the admin page posts it."""
    return {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-0-id": str(band.pk),
        "form-0-max_queued": str(max_queued),
        "form-0-soft_time_limit": str(band.soft_time_limit or ""),
        "form-0-time_limit": str(band.time_limit or ""),
        "_save": "Save",
    }


def test_band_limits__view_permission_shows_them_but_a_post_changes_nothing() -> None:
    band = Band.objects.get(name="urgent")
    viewer = logged_in("view_band")
    assert viewer.get("/admin/queueprio/band/").status_code == 200
    viewer.post("/admin/queueprio/band/", band_form(band, 1))
    assert viewer.post(f"/admin/queueprio/band/{band.pk}/change/", {"max_queued": "1"}).status_code == 403
    band.refresh_from_db()
    assert band.max_queued == 1000


def test_band_limits__the_change_permission_changes_them() -> None:
    band = Band.objects.get(name="urgent")
    response = logged_in("view_band", "change_band").post("/admin/queueprio/band/", band_form(band, 7))
    assert response.status_code == 302
    band.refresh_from_db()
    assert band.max_queued == 7


def test_default_priorities__a_view_only_changelist_post_changes_nothing() -> None:
    row = TaskPriority.objects.get(task_name="tests.record")
    form = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-0-id": str(row.pk),
        "form-0-priority": "1",
        "_save": "Save",
    }
    logged_in("view_taskpriority").post("/admin/queueprio/taskpriority/", form)
    row.refresh_from_db()
    assert row.priority is None


def test_urgent_quota__view_only_cannot_change_it() -> None:
    quota = UrgentQuota.objects.get()
    viewer = logged_in("view_urgentquota")
    assert viewer.get(f"/admin/queueprio/urgentquota/{quota.pk}/change/").status_code == 200
    viewer.post(f"/admin/queueprio/urgentquota/{quota.pk}/change/", {"limit": "1", "policy": "demote"})
    quota.refresh_from_db()
    assert quota.limit != 1


def test_csrf__an_admin_post_without_the_token_is_refused() -> None:
    row = TaskPriority.objects.get(task_name="tests.record")
    client = logged_in(superuser=True, csrf=True)
    form = {"form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "1", "form-0-id": str(row.pk), "form-0-priority": "1"}
    response = client.post("/admin/queueprio/taskpriority/", {**form, "_save": "Save"})
    assert response.status_code == 403
    assert b"CSRF" in response.content
    row.refresh_from_db()
    assert row.priority is None


def secrets_in(body: str, *also: str) -> list[str]:
    database = str(django_settings.DATABASES["default"]["NAME"])
    candidates = [
        django_settings.SECRET_KEY,
        django_settings.CELERY_BROKER_URL,
        django_settings.CELERY_BROKER_URL.split("@")[0],  # user and password
        str(django_settings.CONVERTERS_ROOT),
        database,
        str(django_settings.DATABASES["default"].get("TEST", {}).get("NAME", database)),
        *also,
    ]
    return [secret for secret in candidates if secret and secret in body]


@pytest.mark.broker
def test_metrics__leak_no_setting_or_path(client: Client) -> None:
    response = client.get("/queueprio/metrics")
    assert response.status_code == 200
    assert secrets_in(response.content.decode()) == []


@pytest.mark.parametrize("path", ["/queueprio/health/", "/queueprio/metrics"])
def test_endpoints__with_the_broker_down_leak_neither_its_url_nor_its_password(client: Client, path: str) -> None:
    dead = "amqp://qp-user:canary-password-9f3@127.0.0.1:1/canary-vhost"
    with celery_broker(dead):
        response = client.get(path)
    assert response.status_code in (200, 503)
    body = response.content.decode()
    assert secrets_in(body, dead, "canary-password-9f3", "qp-user", "canary-vhost") == []
