"""Django settings. Everything deployment-specific comes from the environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url
import django
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("QUEUEPRIO_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off.")
    SECRET_KEY = "insecure-development-key-only-used-with-debug-on"  # noqa: S105
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_results",
    "django_celery_beat",
    "queueprio",
    "converters",
]
if django.VERSION < (6, 0):
    # Django's Tasks framework, from the backport before Django 6 (which has it built in).
    INSTALLED_APPS.insert(INSTALLED_APPS.index("queueprio"), "django_tasks")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's static files under gunicorn too (docker compose), no proxy needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def sqlite_database(path: Path) -> dict[str, object]:
    # WAL lets the web process, workers and beat read while one of them writes;
    # IMMEDIATE transactions take the write lock up front instead of failing mid-way.
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        # Kept open between a worker's tasks, as PostgreSQL's are: with 0, Celery's Django fixup
        # closes it after every task and the next one opens it (and runs the PRAGMAs) again.
        "CONN_MAX_AGE": 60,
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


DATABASES: dict[str, Any]
if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60)}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {"default": sqlite_database(VAR_DIR / "db.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    # Our loggers propagate to the root, so a Celery worker (which takes over the root
    # logger) prints each line once, in its own format.
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "queueprio": {"level": os.environ.get("QUEUEPRIO_LOG_LEVEL", "INFO")},
        "converters": {"level": os.environ.get("QUEUEPRIO_LOG_LEVEL", "INFO")},
    },
}

# --- queueprio ---------------------------------------------------------------------
QUEUEPRIO_QUEUE = os.environ.get("QUEUEPRIO_QUEUE", "queueprio")
QUEUEPRIO_LANE_QUEUE = os.environ.get("QUEUEPRIO_LANE_QUEUE", f"{QUEUEPRIO_QUEUE}.critical")
QUEUEPRIO_ENABLED = env_bool("QUEUEPRIO_ENABLED", True)
if os.environ.get("QUEUEPRIO_AGING_THRESHOLD_SECONDS"):  # `manage.py demo` sets a short one for its processes
    QUEUEPRIO_AGING_THRESHOLD_SECONDS = float(os.environ["QUEUEPRIO_AGING_THRESHOLD_SECONDS"])

# Django's Tasks (@task, .enqueue()) go through queueprio: docs/django-tasks.md.
TASKS = {"default": {"BACKEND": "queueprio.backends.QueueprioBackend"}}

# --- converters --------------------------------------------------------------------
CONVERTERS_ROOT = Path(os.environ.get("CONVERTERS_ROOT", VAR_DIR / "files"))

# --- Celery ------------------------------------------------------------------------
# project/celery.py calls queueprio.celery.configure(app), which sets what priority needs from
# the settings above: both queues with x-max-priority (and the main one as the default queue),
# the router, publisher confirms, acks late, prefetch 1, reject on worker lost, the task-sent
# event, the database beat scheduler and the django-db result backend. Anything set here wins.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_RESULT_EXTENDED = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_TRACK_STARTED = True
# Flower reads the workers' task events.
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_IMPORTS = tuple(env_list("QUEUEPRIO_EXTRA_TASK_MODULES"))

# --- production hardening ------------------------------------------------------------
# Only with DEBUG off, so `runserver` keeps working over plain http. With these,
# `manage.py check --deploy` is clean; docs/deploy.md lists the environment knobs.
if not DEBUG:
    if SECRET_KEY.startswith("change-me"):
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is still the placeholder from docker/.env.example.")
    # TLS ends at a proxy in front of gunicorn. Trust its X-Forwarded-Proto only when told to:
    # without a proxy that overwrites it, any client could claim https.
    if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    # HSTS is cached by browsers for this long: lower it (e.g. 3600) while first trying HTTPS.
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    X_FRAME_OPTIONS = "DENY"
