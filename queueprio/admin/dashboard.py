"""Admin for metrics: the dashboard page (``?range=1h|6h|24h``), and the rolled-up minutes as read-only telemetry.

The dashboard is the changelist of a proxy model (``Dashboard``), so the admin lists and
links it in queueprio's app index and sidebar like any model, guards it with its own
"Can view dashboard" permission (superusers have it; grant it to other staff), and no
custom ``AdminSite`` or URL wiring is needed.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from ..models import Dashboard, MinuteStat, TaskPriority
from ..observability import dashboard
from .base import ReadOnlyAdmin


@admin.register(Dashboard)
class DashboardAdmin(ReadOnlyAdmin):
    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            **dashboard.context(timezone.now(), dashboard.parse_range(request.GET.get("range"))),
            "title": "Queue dashboard",
            "opts": self.model._meta,
            "task_defaults_url": self._task_defaults_url(request),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/queueprio/dashboard.html", context)

    def _task_defaults_url(self, request: HttpRequest) -> str | None:
        if not self.admin_site.is_registered(TaskPriority):
            return None
        try:
            return reverse(f"{self.admin_site.name}:queueprio_taskpriority_changelist")
        except NoReverseMatch:
            return None

    def get_urls(self) -> list[Any]:
        # Only the list URL: there are no dashboard objects to view, change or delete.
        return [url for url in super().get_urls() if url.name and url.name.endswith("_changelist")]


@admin.register(MinuteStat)
class MinuteStatAdmin(ReadOnlyAdmin):
    list_display = ["minute", "task_name", "priority", "submitted", "started", "succeeded", "failed", "rejected"]
    list_filter = ["priority", "task_name"]
    date_hierarchy = "minute"
    show_full_result_count = False
    exclude = ["wait_buckets", "run_buckets"]
