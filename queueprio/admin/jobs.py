"""The ledger in the admin: jobs (read-only, with the operator actions), their aging steps, rejections."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from ..exceptions import InvalidPriority
from ..models import AgingStep, Job, JobState, Rejection
from ..operations import actions
from ..priority import LEAST_URGENT, MOST_URGENT, Priority
from .base import ReadOnlyAdmin, TabularInline


class AgingStepInline(TabularInline):
    model = AgingStep
    extra = 0
    can_delete = False
    fields = ("at", "reason", "from_priority", "to_priority", "waited_seconds", "generation")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = [
        "task_id",
        "task_name",
        "state",
        "requested_priority",
        "effective_priority",
        "queued_at",
        "wait",
        "result_link",
    ]
    list_filter = ["state", "effective_priority", "requested_priority", "task_name", "priority_source"]
    search_fields = ["task_id", "=idempotency_key", "caller_key"]
    date_hierarchy = "queued_at"
    list_select_related = False
    inlines = [AgingStepInline]
    show_full_result_count = False
    actions = ["set_priority", "retry"]

    def has_reprioritize_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("queueprio.reprioritize_job")

    @admin.action(description="Set priority of selected queued jobs…", permissions=["reprioritize"])
    def set_priority(self, request: HttpRequest, queryset: QuerySet[Job]) -> HttpResponse | None:
        queued = list(queryset.filter(state=JobState.QUEUED))
        if "apply" not in request.POST:
            names = {p.value: f"{p.value} ({p.name})" for p in Priority}
            choices = [(p, names.get(p, str(p))) for p in range(MOST_URGENT, LEAST_URGENT + 1)]
            context = {
                **self.admin_site.each_context(request),
                "jobs": queued,
                "choices": choices,
                "title": "Set priority",
                "opts": self.model._meta,
            }
            return TemplateResponse(request, "admin/queueprio/job/set_priority.html", context)
        try:
            priority = int(request.POST.get("priority", ""))
            moved = actions.set_priority(queued, priority)
        except (ValueError, InvalidPriority) as exc:
            self.message_user(request, f"Not changed: {exc}", messages.ERROR)
            return None
        self.message_user(request, f"{moved} of {len(queued)} queued jobs republished at priority {priority}.")
        return None

    @admin.action(description="Retry selected failed jobs", permissions=["reprioritize"])
    def retry(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        retried = actions.retry_failed(queryset.filter(state__in=[JobState.FAILED, JobState.PUBLISH_FAILED]))
        self.message_user(request, f"{retried} failed jobs queued again under their own task ids.")

    @admin.display(description="waited")
    def wait(self, obj: Job) -> str:
        if obj.started_at is None:
            return "-"
        return f"{(obj.started_at - obj.queued_at).total_seconds():.1f}s"

    @admin.display(description="result")
    def result_link(self, obj: Job) -> str:
        if not apps.is_installed("django_celery_results"):
            return "-"
        TaskResult = apps.get_model("django_celery_results", "TaskResult")
        result = TaskResult.objects.filter(task_id=obj.task_id).values_list("pk", "status").first()
        if result is None:
            return "-"
        pk, status = result
        try:
            url = reverse("admin:django_celery_results_taskresult_change", args=[pk])
        except NoReverseMatch:
            return str(status)
        return format_html('<a href="{}">{}</a>', url, status)


@admin.register(Rejection)
class RejectionAdmin(ReadOnlyAdmin):
    list_display = ["at", "task_name", "reason", "requested_priority", "band", "caller_key", "detail"]
    list_filter = ["reason", "band", "task_name"]
    search_fields = ["task_name", "detail", "caller_key"]
    date_hierarchy = "at"
