"""Django app config: ``ready()`` only wires checks and signal handlers."""

from __future__ import annotations

from django.apps import AppConfig, apps


class QueueprioConfig(AppConfig):
    name = "queueprio"
    verbose_name = "Queue priorities"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registration happens on import: system checks, signal receivers, queueprio's own tasks.
        from . import checks  # noqa: F401

        # The receivers and tasks import django-celery-beat's models, which raise on import when
        # its app is missing: the checks alone load then, so `manage.py check` can say what to add.
        if apps.is_installed("django_celery_beat"):
            from . import signals, tasks  # noqa: F401
