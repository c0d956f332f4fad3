"""Django app config: ``ready()`` only wires checks and signal handlers."""

from __future__ import annotations

from django.apps import AppConfig


class QueueprioConfig(AppConfig):
    name = "queueprio"
    verbose_name = "Queue priorities"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, signals  # noqa: F401  (registration happens on import)
