"""Settings for the test suite: the project's settings plus an isolated broker vhost and DB file.

Worker subprocesses started by the tests use these settings too (see tests/support/worker.py),
so the test process and the workers share one SQLite file and one throwaway vhost.
"""

from __future__ import annotations

import os

os.environ.setdefault(
    "QUEUEPRIO_EXTRA_TASK_MODULES", "tests.support.tasks,tests.support.semantics_tasks,tests.support.django_tasks"
)

from project.settings import *  # noqa: F403
from project.settings import DATABASES, VAR_DIR

# One file per test run (concurrent runs must not share it); workers inherit the name.
TEST_DB = os.environ.setdefault("QUEUEPRIO_TEST_DB", str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3"))
# A file, not :memory:, so that worker subprocesses see what the tests commit.
DATABASES["default"].setdefault("TEST", {})["NAME"] = TEST_DB
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CONVERTERS_ROOT = os.environ.get("CONVERTERS_ROOT", str(VAR_DIR / "test-files"))  # type: ignore[assignment]

# Postgres test database name, fixed so worker subprocesses can find it.
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    DATABASES["default"]["TEST"]["NAME"] = f"test_{DATABASES['default']['NAME']}"
if os.environ.get("QUEUEPRIO_TEST_WORKER"):
    # A worker started by the tests: talk to the test database the test process created.
    DATABASES["default"]["NAME"] = DATABASES["default"]["TEST"]["NAME"]

# Every test run gets its own RabbitMQ vhost (created and deleted by tests/conftest.py),
# so it never touches a developer's queues. Workers inherit the name through the environment.
TEST_BROKER = os.environ.get("QUEUEPRIO_TEST_BROKER", "amqp://guest:guest@127.0.0.1:5672")
TEST_VHOST = os.environ.setdefault("QUEUEPRIO_TEST_VHOST", f"queueprio-test-{os.getpid()}")
CELERY_BROKER_URL = f"{TEST_BROKER}/{TEST_VHOST}"

# Worker and beat subprocesses take queueprio settings from the environment (JSON values),
# so a test can run them with, say, a one-second aging threshold.
import json  # noqa: E402

from queueprio.conf import PREFIX, Defaults  # noqa: E402

for _name in Defaults.__dataclass_fields__:
    if (PREFIX + _name) in os.environ and _name not in ("QUEUE", "LANE_QUEUE"):
        globals()[PREFIX + _name] = json.loads(os.environ[PREFIX + _name])

# A worker started with Celery's own connection handling (the control case of
# tests/queueprio/test_connections.py): an explicit setting wins over configure(app).
if os.environ.get("QUEUEPRIO_TEST_CELERY_DB_REUSE_MAX"):
    CELERY_DB_REUSE_MAX = json.loads(os.environ["QUEUEPRIO_TEST_CELERY_DB_REUSE_MAX"])
if os.environ.get("QUEUEPRIO_TEST_PROGRESS_INTERVAL"):
    QUEUEPRIO_PROGRESS_INTERVAL_SECONDS = float(os.environ["QUEUEPRIO_TEST_PROGRESS_INTERVAL"])
if os.environ.get("QUEUEPRIO_TEST_CONN_MAX_AGE"):
    DATABASES["default"]["CONN_MAX_AGE"] = json.loads(os.environ["QUEUEPRIO_TEST_CONN_MAX_AGE"])
