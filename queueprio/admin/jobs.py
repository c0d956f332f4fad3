"""The ledger in the admin: jobs (read-only, with the operator actions), their aging steps, rejections."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib import admin, messages
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html

from ..exceptions import InvalidPriority
from ..models import AgingReason, AgingStep, Job, JobState, Rejection
from ..observability.capacity import processes_by_queue
from ..observability.position import expected_start as estimated_start
from ..observability.position import position, with_position
from ..observability.units import format_duration
from ..operations import actions
from ..priority import LEAST_URGENT, MOST_URGENT, Priority
from . import columns
from .base import ReadOnlyAdmin, TabularInline


class AgingStepInline(TabularInline):
    model = AgingStep
    extra = 0
    can_delete = False
    verbose_name_plural = "priority changes (aging steps, admin changes, recoveries)"
    fields = ("at_second", "reason", "from_priority", "to_priority", "changed_by", "waited_seconds", "generation")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="at")
    def at_second(self, obj: AgingStep) -> str:
        return columns.to_the_second(obj.at)


def with_results(queryset: QuerySet[Job]) -> QuerySet[Job]:
    """Each job with its stored Celery result's pk and status, in the same query (no query per row)."""
    if not apps.is_installed("django_celery_results"):
        return queryset
    results = apps.get_model("django_celery_results", "TaskResult").objects.filter(task_id=OuterRef("task_id"))
    return queryset.annotate(
        result_pk=Subquery(results.values("pk")[:1]), result_status=Subquery(results.values("status")[:1])
    )


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = [
        "short_id",
        "task",
        "input",
        "state",
        "where",
        "requested",
        "effective",
        "queued",
        "waited",
        "ran",
        "error_line",
        "result_link",
    ]
    list_filter = ["state", "effective_priority", "requested_priority", "task_name", "priority_source"]
    # args holds a converter's input and output paths: "in/a.csv" finds the jobs that convert it.
    search_fields = ["task_id", "=idempotency_key", "caller_key", "args"]
    date_hierarchy = "queued_at"
    list_select_related = False
    inlines = [AgingStepInline]
    show_full_result_count = False
    change_list_template = "admin/queueprio/job/change_list.html"
    actions = ["set_priority", "cancel", "retry"]
    fieldsets = [
        (None, {"fields": ["task_id", "task_name", "state", "input", "args", "kwargs", "error", "result_link"]}),
        (
            "Priority (1 = most urgent)",
            {
                "fields": [
                    "requested_priority",
                    "priority_source",
                    "admin_change",
                    "effective_priority",
                    "band_name",
                    "caller_key",
                    "idempotency_key",
                ]
            },
        ),
        ("Where it stands", {"fields": ["progress_bar", "position_now", "expected_start"]}),
        ("Times", {"fields": ["queued", "eta", "started", "finished", "waited", "ran", "expires_at"]}),
        ("Copies and runs", {"fields": ["generation", "claimed_generation", "retries", "worker_losses", "worker"]}),
    ]
    readonly_fields = [
        "input",
        "result_link",
        "admin_change",
        "progress_bar",
        "position_now",
        "expected_start",
        "queued",
        "started",
        "finished",
        "waited",
        "ran",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        return with_position(with_results(super().get_queryset(request)))

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
            moved = actions.set_priority(queued, priority, changed_by=request.user.get_username())
        except (ValueError, InvalidPriority) as exc:
            self.message_user(request, f"Not changed: {exc}", messages.ERROR)
            return None
        self.message_user(request, f"{moved} of {len(queued)} queued jobs republished at priority {priority}.")
        return None

    @admin.action(description="Cancel selected waiting jobs (they never run)", permissions=["reprioritize"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        selected = queryset.count()
        cancelled = actions.cancel(queryset.filter(state__in=[JobState.SCHEDULED, JobState.QUEUED]))
        self.message_user(
            request,
            f"{cancelled} of {selected} selected jobs cancelled: they will never run. "
            "Only waiting (queued or scheduled) jobs can be cancelled here.",
            messages.SUCCESS if cancelled else messages.WARNING,
        )

    @admin.action(description="Retry selected failed jobs", permissions=["reprioritize"])
    def retry(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        retried = actions.retry_failed(queryset.filter(state__in=[JobState.FAILED, JobState.PUBLISH_FAILED]))
        self.message_user(request, f"{retried} failed jobs queued again under their own task ids.")

    @admin.display(description="task id", ordering="task_id")
    def short_id(self, obj: Job) -> str:
        return format_html('<span title="{}">{}</span>', obj.task_id, obj.task_id[: columns.SHORT_ID])

    @admin.display(description="task", ordering="task_name")
    def task(self, obj: Job) -> str:
        """The task's own name; its app (``converters.``) in the tooltip."""
        app, _, name = obj.task_name.rpartition(".")
        return format_html('<span title="{}">{}</span>', obj.task_name, name) if app else obj.task_name

    @admin.display(description="input")
    def input(self, obj: Job) -> str:
        return columns.input_summary(obj.args, obj.kwargs)

    @admin.display(description="progress / place")
    def where(self, obj: Job) -> str:
        """A running job's progress; a waiting one's place (counted in the page's own query)."""
        if obj.state == JobState.STARTED:
            return columns.progress_html(obj.progress, obj.progress_note)
        return columns.standing(obj.state, position=getattr(obj, "ahead", None), eta=obj.eta, now=timezone.now())

    @admin.display(description="progress")
    def progress_bar(self, obj: Job) -> str:
        text = columns.progress_html(obj.progress, obj.progress_note)
        if obj.progress_at is not None and obj.state == JobState.STARTED:
            return format_html("{} (reported at {})", text, columns.to_the_second(obj.progress_at))
        return text

    @admin.display(description="jobs ahead")
    def position_now(self, obj: Job) -> str:
        return columns.standing(obj.state, position=position(obj), eta=obj.eta, now=timezone.now()) or "–"

    @admin.display(description="expected start")
    def expected_start(self, obj: Job) -> str:
        """The estimate (``observability.position``), on the worker processes that answer for its queue."""
        if obj.state == JobState.SCHEDULED:
            return columns.to_the_second(obj.eta)
        if obj.state not in (JobState.QUEUED, JobState.HELD):
            return "–"
        now = timezone.now()
        try:
            workers = processes_by_queue().get(obj.queue, 0)
        except Exception:  # the broker is away
            return "unknown: the workers could not be asked (is RabbitMQ up?)"
        if not workers:
            return f"no worker consumes queue {obj.queue!r} now"
        start = estimated_start(obj, now=now, workers=workers)
        if start is None:
            return "–"
        limit = obj.band.max_running if obj.state == JobState.HELD and obj.band is not None else None
        on = f"{workers} worker processes" if limit is None else f"its band's {min(workers, limit)} running slots"
        wait = format_duration(max(0.0, (start - now).total_seconds()))
        return f"{columns.to_the_second(start)} (in about {wait}, on {on})"

    @admin.display(description="requested", ordering="requested_priority")
    def requested(self, obj: Job) -> int:
        return obj.requested_priority

    @admin.display(description="effective", ordering="effective_priority")
    def effective(self, obj: Job) -> str:
        if obj.admin_priority is not None:
            return format_html('{} <span title="set in the admin">(admin)</span>', obj.effective_priority)
        return str(obj.effective_priority)

    @admin.display(description="queued at", ordering="queued_at")
    def queued(self, obj: Job) -> str:
        return columns.to_the_second(obj.queued_at)

    @admin.display(description="started at")
    def started(self, obj: Job) -> str:
        return columns.to_the_second(obj.started_at)

    @admin.display(description="finished at")
    def finished(self, obj: Job) -> str:
        return columns.to_the_second(obj.finished_at)

    @admin.display(description="waited")
    def waited(self, obj: Job) -> str:
        return columns.waited(obj.queued_at, obj.eta, obj.started_at, obj.state)

    @admin.display(description="ran")
    def ran(self, obj: Job) -> str:
        return columns.ran(obj.started_at, obj.finished_at, obj.state)

    @admin.display(description="error")
    def error_line(self, obj: Job) -> str:
        return columns.error_line(obj.error, obj.state)

    @admin.display(description="set in admin")
    def admin_change(self, obj: Job) -> str:
        step = obj.aging_steps.filter(reason=AgingReason.ADMIN).order_by("-at", "-pk").first()
        if step is None:
            return "–"
        who = step.changed_by or "an unrecorded user"
        return f"{step.to_priority} (from {step.from_priority}) by {who} at {columns.to_the_second(step.at)}"

    @admin.display(description="result")
    def result_link(self, obj: Job) -> str:
        pk, status = getattr(obj, "result_pk", None), getattr(obj, "result_status", None)
        if pk is None:
            return "-"
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
