"""Configuration staff edit at run time: default priorities per task, the bands, the urgent quota."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from ..conf import settings
from ..models import Band, TaskPriority, UrgentQuota
from .base import ModelAdmin


@admin.register(TaskPriority)
class TaskPriorityAdmin(ModelAdmin):
    list_display = ["task_name", "code_default", "priority", "effective"]
    list_editable = ["priority"]
    readonly_fields = ["task_name", "code_default", "updated_at"]
    search_fields = ["task_name"]
    fields = ["task_name", "code_default", "priority", "updated_at"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # rows are seeded from the registered tasks

    @admin.display(description="effective default")
    def effective(self, obj: TaskPriority) -> int:
        for value in (obj.priority, obj.code_default):
            if value is not None:
                return value
        return int(settings.DEFAULT_PRIORITY)


@admin.register(Band)
class BandAdmin(ModelAdmin):
    """Limits apply to the next submission; ``queued`` is the live admission counter."""

    list_display = ["name", "most_urgent", "least_urgent", "max_queued", "queued", "soft_time_limit", "time_limit"]
    list_editable = ["max_queued", "soft_time_limit", "time_limit"]
    readonly_fields = ["queued"]


@admin.register(UrgentQuota)
class UrgentQuotaAdmin(ModelAdmin):
    list_display = ["__str__", "limit", "max_priority", "window_seconds", "policy", "demote_to"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not UrgentQuota.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
