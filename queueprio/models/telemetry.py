"""Metrics tables, written by the rollup beat task (``queueprio.observability.rollup``), never per job.

Imported by ``queueprio.models`` so that Django finds them. Durations are in seconds;
histogram counts follow ``queueprio.observability.histogram.DURATION_BOUNDS`` (one count per
bound plus an overflow bucket).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..priority import LEAST_URGENT, NO_PRIORITY

__all__ = ["BandSample", "Dashboard", "DepthSample", "MetricTotal", "MinuteStat", "RollupWatermark"]

STAT_PRIORITY_HELP = _("1 = most urgent … 10 = least urgent; 0 = a rejection without a valid priority.")


class StatColumns(models.Model):
    """The counters and duration histograms shared by the per-minute rows and the lifetime totals."""

    task_name = models.CharField(_("task"), max_length=200)
    priority = models.PositiveSmallIntegerField(_("priority"), help_text=STAT_PRIORITY_HELP)
    submitted = models.PositiveBigIntegerField(_("submitted"), default=0, help_text=_("At the requested priority."))
    started = models.PositiveBigIntegerField(_("started"), default=0, help_text=_("At the effective priority."))
    succeeded = models.PositiveBigIntegerField(_("succeeded"), default=0)
    failed = models.PositiveBigIntegerField(_("failed"), default=0)
    rejected = models.PositiveBigIntegerField(_("rejected"), default=0)
    rejection_reasons = models.JSONField(_("rejections by reason"), default=dict, blank=True)
    aged = models.PositiveBigIntegerField(_("aging steps"), default=0, help_text=_("Counted at the priority left."))
    wait_count = models.PositiveBigIntegerField(_("waits measured"), default=0)
    wait_sum = models.FloatField(
        _("total wait (s)"), default=0.0, help_text=_("From eligible (queued or ETA) to start.")
    )
    wait_buckets = models.JSONField(_("wait histogram"), default=list, blank=True)
    run_count = models.PositiveBigIntegerField(_("runs measured"), default=0)
    run_sum = models.FloatField(_("total run time (s)"), default=0.0, help_text=_("From start to finish."))
    run_buckets = models.JSONField(_("run-time histogram"), default=list, blank=True)

    class Meta:
        abstract = True


class MinuteStat(StatColumns):
    """What happened in one closed minute to one task at one priority."""

    id = models.BigAutoField(primary_key=True)
    minute = models.DateTimeField(_("minute"), help_text=_("Start of the minute (UTC), seconds zero."))
    wait_max = models.FloatField(_("longest wait (s)"), null=True, blank=True)
    run_max = models.FloatField(_("longest run (s)"), null=True, blank=True)

    class Meta:
        verbose_name = _("minute statistic")
        verbose_name_plural = _("minute statistics")
        ordering = ["-minute", "task_name", "priority"]
        constraints = [
            # Leading on minute, so it also serves the window reads and the pruning.
            models.UniqueConstraint(fields=["minute", "task_name", "priority"], name="queueprio_minutestat_key"),
            models.CheckConstraint(
                condition=Q(priority__gte=NO_PRIORITY, priority__lte=LEAST_URGENT),
                name="queueprio_minutestat_priority_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} {self.task_name} p{self.priority}"


class MetricTotal(StatColumns):
    """Lifetime totals per task and priority, so Prometheus counters only go up.

    A row nothing has added to for ``QUEUEPRIO_METRICS_RETENTION_DAYS`` is pruned with the
    per-minute rows (a task gone from the code stops being exported; should it come back, its
    counters start again from zero, which Prometheus reads as a counter reset).
    """

    id = models.BigAutoField(primary_key=True)
    updated_at = models.DateTimeField(
        _("last added to"), default=timezone.now, help_text=_("When the rollup last added to this row.")
    )

    class Meta:
        verbose_name = _("metric total")
        verbose_name_plural = _("metric totals")
        ordering = ["task_name", "priority"]
        constraints = [
            models.UniqueConstraint(fields=["task_name", "priority"], name="queueprio_metrictotal_key"),
        ]

    def __str__(self) -> str:
        return f"{self.task_name} p{self.priority}"


class DepthSample(models.Model):
    """Queued jobs at one effective priority when the rollup last looked (the ledger's count)."""

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(_("sampled at"))
    priority = models.PositiveSmallIntegerField(_("effective priority"))
    queued = models.PositiveIntegerField(_("queued jobs"))
    oldest_queued_at = models.DateTimeField(_("oldest waiting since"), null=True, blank=True)

    class Meta:
        verbose_name = _("depth sample")
        verbose_name_plural = _("depth samples")
        ordering = ["-at", "priority"]
        constraints = [models.UniqueConstraint(fields=["at", "priority"], name="queueprio_depthsample_key")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} p{self.priority}: {self.queued}"


class BandSample(models.Model):
    """Queued jobs in one band and how long its oldest one had waited, when the rollup looked."""

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(_("sampled at"))
    band = models.CharField(_("band"), max_length=32)
    queued = models.PositiveIntegerField(_("queued jobs"))
    oldest_queued_at = models.DateTimeField(_("oldest waiting since"), null=True, blank=True)

    class Meta:
        verbose_name = _("band sample")
        verbose_name_plural = _("band samples")
        ordering = ["-at", "band"]
        constraints = [models.UniqueConstraint(fields=["at", "band"], name="queueprio_bandsample_key")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.band}: {self.queued}"


class RollupWatermark(models.Model):
    """How far the rollup got: every minute before ``processed_until`` is in ``MinuteStat``."""

    name = models.CharField(_("name"), max_length=32, unique=True)
    processed_until = models.DateTimeField(_("processed until"))

    class Meta:
        verbose_name = _("rollup watermark")
        verbose_name_plural = _("rollup watermarks")

    def __str__(self) -> str:
        return f"{self.name}: {self.processed_until:%Y-%m-%d %H:%M}"


class Dashboard(MinuteStat):
    """No table of its own: gives the admin dashboard a place (and a permission) in the app index."""

    class Meta:
        proxy = True
        verbose_name = _("dashboard")
        verbose_name_plural = _("dashboard")
        default_permissions = ("view",)

    def __str__(self) -> str:  # pragma: no cover - never listed
        return "dashboard"
