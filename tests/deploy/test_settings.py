"""Production settings: `check --deploy` is clean, and a missing secret stops the start.

Each test runs manage.py in a subprocess with its own environment, as a container would,
since the settings are read once at import.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# The developer's or CI's own values must not leak into the production-like environment.
SCRUBBED_PREFIXES = ("DJANGO_", "QUEUEPRIO_", "CELERY_")
SCRUBBED_NAMES = {"DATABASE_URL", "CONVERTERS_ROOT"}


def production_env(var_dir: Path, **overrides: str | None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(SCRUBBED_PREFIXES) and key not in SCRUBBED_NAMES
    }
    env.update(
        DJANGO_SETTINGS_MODULE="project.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="example.com",
        QUEUEPRIO_VAR_DIR=str(var_dir),
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="defaults"),
        pytest.param({"DJANGO_SECURE_PROXY_SSL_HEADER": "1"}, id="behind-tls-proxy"),
    ],
)
def test_check_deploy_is_clean(tmp_path: Path, overrides: dict[str, str]) -> None:
    result = manage(production_env(tmp_path, **overrides), "check", "--deploy", "--fail-level", "WARNING")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Said explicitly: queueprio's own checks (prefetch, acks late, priority queues) count too.
    assert "queueprio.W" not in output
    assert "no issues" in output


def test_missing_secret_key_refuses_to_start(tmp_path: Path) -> None:
    result = manage(production_env(tmp_path, DJANGO_SECRET_KEY=None), "check")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off." in result.stderr


def test_placeholder_secret_key_refuses_to_start(tmp_path: Path) -> None:
    example = (REPO_ROOT / "docker" / ".env.example").read_text()
    placeholder = next(line.split("=", 1)[1] for line in example.splitlines() if line.startswith("DJANGO_SECRET_KEY="))
    result = manage(production_env(tmp_path, DJANGO_SECRET_KEY=placeholder), "check")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "placeholder" in result.stderr


SETTINGS_DUMP = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({n: getattr(s, n) for n in ("
    "'SECURE_SSL_REDIRECT', 'SECURE_HSTS_SECONDS', 'SECURE_PROXY_SSL_HEADER', 'SESSION_COOKIE_SECURE')}))"
)


def dump_settings(env: dict[str, str]) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", SETTINGS_DUMP], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_hardening_knobs_come_from_the_environment(tmp_path: Path) -> None:
    env = production_env(
        tmp_path, DJANGO_SECURE_SSL_REDIRECT="0", DJANGO_SECURE_HSTS_SECONDS="3600", DJANGO_SECURE_PROXY_SSL_HEADER="1"
    )
    assert dump_settings(env) == {
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 3600,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SESSION_COOKIE_SECURE": True,
    }


def test_debug_keeps_plain_http(tmp_path: Path) -> None:
    # runserver on http://localhost must keep working: no redirect, no secure-only cookies.
    env = production_env(tmp_path, DJANGO_DEBUG="1", DJANGO_SECRET_KEY=None)
    assert dump_settings(env) == {
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 0,
        "SECURE_PROXY_SSL_HEADER": None,
        "SESSION_COOKIE_SECURE": False,
    }
