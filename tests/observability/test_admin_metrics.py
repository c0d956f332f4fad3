"""The dashboard in the admin: who may see it, where it is linked, and that telemetry stays read-only."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import NoReverseMatch, reverse

pytestmark = pytest.mark.django_db

DASHBOARD = "/admin/queueprio/dashboard/"


def staff(client: Client, *permissions: str) -> Client:
    user = get_user_model().objects.create_user("staff", password="pw", is_staff=True)
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(content_type__app_label="queueprio", codename=codename))
    client.force_login(user)
    return client


def test_dashboard__anonymous_is_sent_to_the_login(client: Client) -> None:
    response = client.get(DASHBOARD)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_dashboard__staff_without_the_permission_is_refused(client: Client) -> None:
    assert staff(client).get(DASHBOARD).status_code == 403


def test_dashboard__staff_with_view_dashboard_sees_it(client: Client) -> None:
    response = staff(client, "view_dashboard").get(DASHBOARD)
    assert response.status_code == 200
    assert response.templates[0].name == "admin/queueprio/dashboard.html"
    assert b'<meta http-equiv="refresh" content="15">' in response.content
    assert response.content.count(b'<svg class="qp-chart"') == 4  # no rejections: no rejections chart


def test_app_index__links_the_dashboard(admin_client: Client) -> None:
    response = admin_client.get("/admin/queueprio/")
    assert response.status_code == 200
    assert f'href="{DASHBOARD}"'.encode() in response.content


def test_dashboard__has_no_object_urls_and_no_edit_rights(admin_client: Client) -> None:
    for name in ("add", "change", "delete", "history"):
        with pytest.raises(NoReverseMatch):
            reverse(f"admin:queueprio_dashboard_{name}", args=[1] if name != "add" else [])
    assert admin_client.get("/admin/queueprio/minutestat/add/").status_code == 403
    assert admin_client.get("/admin/queueprio/minutestat/").status_code == 200
