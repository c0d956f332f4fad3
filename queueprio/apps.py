"""Django app config: ``ready()`` only wires checks and signal handlers."""

from __future__ import annotations

from django.apps import AppConfig


class QueueprioConfig(AppConfig):
    name = "queueprio"
    verbose_name = "Queue priorities"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registration happens on import: system checks, signal receivers, queueprio's own tasks.
        from . import checks, signals, tasks  # noqa: F401
