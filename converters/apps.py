"""Django app config for the converters."""

from __future__ import annotations

from django.apps import AppConfig


class ConvertersConfig(AppConfig):
    name = "converters"
    verbose_name = "Converters"

    def ready(self) -> None:
        from . import signals, tasks  # noqa: F401  (tasks: registers the shipped converters as Celery tasks)

        signals.connect()
