"""Django settings for the queueprio mode of Celery's integration suite.

The project's settings, with the ledger in a throwaway SQLite file (``CELERY_SUITE_DB``) and the
queueprio queue named ``celery``: the suite's own conftest fails any test whose app declares a
queue other than ``celery``. The reserved lane is off (``QUEUEPRIO_LANE_MAX_PRIORITY`` unset),
so its queue is not declared either. The session worker's pool processes find this module
through ``DJANGO_SETTINGS_MODULE`` in the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QUEUEPRIO_QUEUE", "celery")

from project.settings import *  # noqa: F403
from project.settings import VAR_DIR, sqlite_database

# No query log kept in memory for thousands of tasks, and no DEBUG warning from Celery's Django fixup.
DEBUG = False
DATABASES = {"default": sqlite_database(Path(os.environ.get("CELERY_SUITE_DB", VAR_DIR / "celery-suite.sqlite3")))}
CELERY_BROKER_URL = os.environ.get("TEST_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
