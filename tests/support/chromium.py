"""Headless Chromium for the dashboard test: installed from Debian on demand, run with fixed flags."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

#: Flags that keep a headless run offline, quiet and independent of any user profile.
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def find() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def install() -> str:
    """``apt-get install chromium``; returns the binary, or raises RuntimeError with apt's output."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=900, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"{' '.join(args)}: {exc}") from exc
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {(done.stderr or done.stdout)[-2000:]}")
    binary = find()
    if binary is None:
        raise RuntimeError("apt-get installed chromium but no chromium binary is on PATH")
    return binary


def run(binary: str, profile: Path, *args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with its own throwaway profile directory."""
    command = [binary, *HEADLESS_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


if __name__ == "__main__":  # `python -m tests.support.chromium`: install ahead of a test run
    print(find() or install())
