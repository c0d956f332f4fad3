"""Configuration staff edit at run time: default priorities per task, the bands, the urgent quota."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db import models
from django.http import HttpRequest

from ..conf import settings
from ..models import Band, TaskPriority, UrgentQuota
from ..priority import LEAST_URGENT, MOST_URGENT
from .base import ModelAdmin

#: What a priority input says when the value is off the scale (instead of the database's constraint error).
OFF_THE_SCALE = f"A priority is a whole number from {MOST_URGENT} (most urgent) to {LEAST_URGENT} (least urgent)."


def priority_field(db_field: models.Field[Any, Any], **kwargs: Any) -> forms.Field:
    """A form field for a priority column: ``min=1 max=10`` on the input, and an error in words."""
    messages = {"min_value": OFF_THE_SCALE, "max_value": OFF_THE_SCALE, "invalid": OFF_THE_SCALE}
    field = forms.IntegerField(
        min_value=MOST_URGENT,
        max_value=LEAST_URGENT,
        required=not db_field.blank,
        label=db_field.verbose_name.capitalize(),
        help_text=db_field.help_text,
        error_messages=messages,
        **{key: value for key, value in kwargs.items() if key in ("initial", "widget")},
    )
    field.widget.attrs.setdefault("style", "width: 5em")
    return field


class PriorityFieldsAdmin(ModelAdmin):
    """Priority columns (``priority_fields``) get :func:`priority_field` in the change form and the list."""

    priority_fields: tuple[str, ...] = ()

    def formfield_for_dbfield(self, db_field: models.Field[Any, Any], request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name in self.priority_fields:
            return priority_field(db_field, **kwargs)
        return super().formfield_for_dbfield(db_field, request, **kwargs)


@admin.register(TaskPriority)
class TaskPriorityAdmin(PriorityFieldsAdmin):
    priority_fields = ("priority",)
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
class BandAdmin(PriorityFieldsAdmin):
    """Limits apply to the next submission (``max_queued``) and the next start (``max_running``);
    ``queued`` and ``running`` are the live counters."""

    priority_fields = ("most_urgent", "least_urgent")
    list_display = [
        "name",
        "most_urgent",
        "least_urgent",
        "max_queued",
        "queued",
        "max_running",
        "running",
        "soft_time_limit",
        "time_limit",
    ]
    list_editable = ["max_queued", "max_running", "soft_time_limit", "time_limit"]
    readonly_fields = ["queued", "running", "corrections"]


@admin.register(UrgentQuota)
class UrgentQuotaAdmin(PriorityFieldsAdmin):
    priority_fields = ("max_priority", "demote_to")
    list_display = ["__str__", "limit", "max_priority", "window_seconds", "policy", "demote_to"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return not UrgentQuota.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
