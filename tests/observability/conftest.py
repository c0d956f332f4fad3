"""Fixtures for the observability tests: headless Chromium, installed from Debian when missing."""

from __future__ import annotations

import os

import pytest

from tests.support import chromium as chromium_support


@pytest.fixture(scope="session")
def chromium() -> str:
    """The chromium binary; ``apt-get install chromium`` first if it isn't there.

    Without it the browser tests skip locally (with the reason) but fail in CI (``CI`` set),
    where a missing browser must not pass silently.
    """
    binary = chromium_support.find()
    if binary is not None:
        return binary
    try:
        return chromium_support.install()
    except RuntimeError as exc:
        message = f"chromium is not installed and `apt-get install chromium` failed: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
