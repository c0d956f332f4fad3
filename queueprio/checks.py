"""System checks: what a project still lacks for queueprio, and settings that would quietly defeat priority.

Each message names one missing piece and its hint says exactly what to write. A project that
followed the README (three apps, ``configure(app)``, one URL include) gets none.
"""

from __future__ import annotations

from typing import Any

import celery
from celery.app import app_or_default
from django.conf import settings as django_settings
from django.core import checks
from django.urls import NoReverseMatch, reverse

from .conf import settings
from .priority import AMQP_MAX_PRIORITY
from .wiring import (
    BEAT_SCHEDULER,
    PLAIN_RESULTS_BACKEND,
    RESULTS_APP,
    RESULTS_BACKEND,
    ROUTER,
    is_configured,
    setting_name,
)

CONFIGURE = "queueprio.celery.configure(app)"

CELERY_PY = """Create <project>/celery.py:
    import os
    from celery import Celery
    import queueprio.celery
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "<project>.settings")
    app = Celery("<project>")
    app.config_from_object("django.conf:settings", namespace="CELERY")
    queueprio.celery.configure(app)
    app.autodiscover_tasks()
and add to <project>/__init__.py:
    from .celery import app as celery_app
    __all__ = ["celery_app"]"""


def _queue_has_priority(queue: Any) -> bool:
    arguments = getattr(queue, "queue_arguments", None) or {}
    return arguments.get("x-max-priority") == AMQP_MAX_PRIORITY


def _current_app() -> celery.Celery:
    """The project's Celery app itself: ``celery.current_app`` is a proxy, which the weak set of
    configured apps would not recognise."""
    return app_or_default()


def _is_fallback(app: celery.Celery) -> bool:
    """Is ``app`` Celery's stand-in, made because the project never created an app of its own?

    Celery makes it on first use of ``current_app``, named "default" and without the Django fixup
    that every ``Celery(...)`` gets.
    """
    return app.main == "default" and not getattr(app, "fixups", None)  # not in celery-types


def _project_package() -> str:
    """The package holding the settings module ("mysite" for mysite.settings), for the E002 hint."""
    module = getattr(django_settings, "SETTINGS_MODULE", None) or ""
    return module.rpartition(".")[0] or "<project>"


def _name(app: celery.Celery, key: str) -> str:
    return "CELERY_" + key.upper() if _is_fallback(app) else setting_name(app, key)


def _write(app: celery.Celery, key: str, value: str) -> str:
    """The hint's "what to write": the project's own line, or configure() doing it."""
    name = _name(app, key)
    if is_configured(app):
        return (
            f"Remove {name} from your settings (queueprio.celery.configure(app) sets {value}), or set {name} = {value}."
        )
    return f"Call {CONFIGURE} in your Celery app module (it sets this), or set {name} = {value}."


@checks.register(checks.Tags.compatibility)
def check_installed_apps(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    installed = list(getattr(django_settings, "INSTALLED_APPS", ()))
    errors: list[checks.CheckMessage] = []
    if "django_celery_beat" not in installed:
        errors.append(
            checks.Error(
                "django_celery_beat is not in INSTALLED_APPS.",
                hint='Add "django_celery_beat" to INSTALLED_APPS and run `manage.py migrate`: the aging sweep, '
                "the metrics rollup and pruning are periodic tasks in its tables.",
                id="queueprio.E001",
            )
        )
    return errors


@checks.register(checks.Tags.compatibility)
def check_celery_app(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    app = _current_app()
    if _is_fallback(app):
        return [
            checks.Error(
                "No Celery app: the project never created one (or never imports it).",
                hint=CELERY_PY.replace("<project>", _project_package()),
                id="queueprio.E002",
            )
        ]
    if not is_configured(app):
        return [
            checks.Warning(
                f"The Celery app {app.main!r} was not configured by queueprio.",
                hint=f"In the module that creates it, call {CONFIGURE} right after "
                "app.config_from_object(...). Without it every setting below is yours to write.",
                id="queueprio.W009",
            )
        ]
    return []


@checks.register(checks.Tags.compatibility)
def check_celery_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    app = _current_app()
    conf = app.conf
    errors: list[checks.CheckMessage] = []
    if (conf.worker_prefetch_multiplier or 0) != 1:
        errors.append(
            checks.Warning(
                f"worker_prefetch_multiplier is {conf.worker_prefetch_multiplier}, not 1.",
                hint="Each worker process then holds several messages, and an urgent job waits behind "
                "them. " + _write(app, "worker_prefetch_multiplier", "1"),
                id="queueprio.W001",
            )
        )
    if not conf.task_acks_late:
        errors.append(
            checks.Warning(
                "task_acks_late is off.",
                hint="Early acks let the broker hand out the next message before the current one "
                "ran, and lose jobs when a worker dies. " + _write(app, "task_acks_late", "True"),
                id="queueprio.W002",
            )
        )
    if not conf.task_reject_on_worker_lost:
        errors.append(
            checks.Warning(
                "task_reject_on_worker_lost is off.",
                hint="A job whose worker process died is then marked failed instead of redelivered. "
                + _write(app, "task_reject_on_worker_lost", "True"),
                id="queueprio.W003",
            )
        )
    errors += _queue_warnings(app)
    broker = str(conf.broker_url or "")
    # No broker URL at all means Celery's default, amqp://guest@localhost//.
    if broker and not broker.startswith(("amqp", "pyamqp")):
        errors.append(
            checks.Warning(
                f"broker transport {broker.split(':', 1)[0]!r} does not honour AMQP priorities.",
                hint="queueprio schedules by priority only on RabbitMQ: set "
                f'{_name(app, "broker_url")} = "amqp://USER:PASSWORD@HOST:5672/VHOST".',
                id="queueprio.W005",
            )
        )
    errors += _wiring_warnings(app)
    return errors


def _queue_warnings(app: celery.Celery) -> list[checks.CheckMessage]:
    queues = {q.name: q for q in (app.conf.task_queues or ())}
    errors: list[checks.CheckMessage] = []
    for name in sorted(
        {settings.QUEUE, settings.LANE_QUEUE if settings.LANE_MAX_PRIORITY is not None else None} - {None}
    ):
        queue = queues.get(name)
        if queue is None or not _queue_has_priority(queue):
            fix = (
                f"Declare it in {_name(app, 'task_queues')} with queueprio.celery.priority_queue({name!r})"
                + (f", or call {CONFIGURE}, which declares it" if not is_configured(app) else "")
                + ". An existing queue can't be changed: move it with `manage.py queueprio migrate-queue`."
            )
            errors.append(
                checks.Warning(
                    f"queue {name!r} is not declared with x-max-priority {AMQP_MAX_PRIORITY}.",
                    hint="RabbitMQ then ignores message priority. " + fix,
                    id="queueprio.W004",
                )
            )
    return errors


def _routes_include_router(routes: Any) -> bool:
    if routes is None:
        return False
    if isinstance(routes, (str, dict)) or callable(routes):
        routes = (routes,)
    return any(route == ROUTER or getattr(route, "__name__", None) == "route_task" for route in routes)


def _wiring_warnings(app: celery.Celery) -> list[checks.CheckMessage]:
    """Routes, confirms, the beat scheduler and the result backend."""
    conf = app.conf
    errors: list[checks.CheckMessage] = []
    if not _routes_include_router(conf.task_routes):
        errors.append(
            checks.Warning(
                "queueprio's router is not in task_routes.",
                hint="Messages sent without queueprio (send_task, canvas) then skip its queue choice and "
                f"default priority. Put {ROUTER!r} first in {_name(app, 'task_routes')}, e.g. "
                f"{_name(app, 'task_routes')} = ({ROUTER!r}, ...your routes...)"
                + (f", or call {CONFIGURE}." if not is_configured(app) else "."),
                id="queueprio.W006",
            )
        )
    if not (conf.broker_transport_options or {}).get("confirm_publish"):
        errors.append(
            checks.Warning(
                "publisher confirms are off (broker_transport_options has no confirm_publish).",
                hint="A submission then returns before RabbitMQ has its message, and a lost publish goes "
                f'unnoticed. Add "confirm_publish": True to {_name(app, "broker_transport_options")}'
                + (f", or call {CONFIGURE}." if not is_configured(app) else "."),
                id="queueprio.W010",
            )
        )
    if conf.beat_scheduler != BEAT_SCHEDULER:
        errors.append(
            checks.Warning(
                f"beat_scheduler is {conf.beat_scheduler!r}, not django-celery-beat's.",
                hint="queueprio's aging sweep, rollup and pruning are entries in django-celery-beat's tables; "
                "another scheduler never runs them. " + _write(app, "beat_scheduler", repr(BEAT_SCHEDULER)),
                id="queueprio.W007",
            )
        )
    errors += _result_backend_messages(app)
    return errors


def _result_backend_messages(app: celery.Celery) -> list[checks.CheckMessage]:
    backend = str(app.conf.result_backend or "")
    installed = RESULTS_APP in getattr(django_settings, "INSTALLED_APPS", ())
    add_app = f'Add "{RESULTS_APP}" to INSTALLED_APPS and run `manage.py migrate`'
    if backend in ("", "disabled"):
        if not installed:
            fix = add_app + (
                f"; {CONFIGURE} then uses it."
                if is_configured(app)
                else ". " + _write(app, "result_backend", repr(RESULTS_BACKEND))
            )
        else:
            fix = _write(app, "result_backend", repr(RESULTS_BACKEND))
        return [
            checks.Warning(
                "No Celery result backend: results (result.get(), the Tasks API, the admin's result link) "
                "are not kept.",
                hint=fix,
                id="queueprio.W008",
            )
        ]
    if backend in (RESULTS_BACKEND, PLAIN_RESULTS_BACKEND) and not installed:
        return [
            checks.Error(
                f"result_backend is {backend!r} but {RESULTS_APP} is not in INSTALLED_APPS.",
                hint=add_app + ".",
                id="queueprio.E003",
            )
        ]
    return []


@checks.register(checks.Tags.urls)
def check_urls(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if not getattr(django_settings, "ROOT_URLCONF", None):
        return []
    try:
        reverse("queueprio:health")
    except NoReverseMatch:
        return [
            checks.Warning(
                "queueprio's URLs (health, metrics) are not included.",
                hint='In your ROOT_URLCONF add path("queueprio/", include("queueprio.urls")) to urlpatterns '
                "(from django.urls import include, path).",
                id="queueprio.W011",
            )
        ]
    return []
