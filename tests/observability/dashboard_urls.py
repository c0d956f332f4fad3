"""Test-only URLs: the project's, plus a door that logs a browser in (Chromium can't be handed a cookie)."""

from __future__ import annotations

from django.contrib.auth import get_user_model, login
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import path
from django.utils.http import url_has_allowed_host_and_scheme

from project.urls import urlpatterns as project_urlpatterns


def log_in_as(request: HttpRequest, username: str) -> HttpResponseRedirect:
    """Log the browser in as ``username`` (a real session cookie), then go to ``next``."""
    login(request, get_user_model().objects.get(username=username))
    target = request.GET.get("next", "/admin/")
    assert url_has_allowed_host_and_scheme(target, allowed_hosts=None)
    return HttpResponseRedirect(target)


urlpatterns = [path("test-login/<str:username>/", log_in_as), *project_urlpatterns]
