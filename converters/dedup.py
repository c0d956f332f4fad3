"""An idempotency key from what a conversion does, so the same request joins the job already queued."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def content_key(name: str, source: Path, *, target: str | None, options: dict[str, Any] | None) -> str:
    """A key from the converter, the input's bytes, the target and the options."""
    digest = hashlib.sha256()
    with source.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    spec = json.dumps({"target": target, "options": options or {}}, sort_keys=True, default=str)
    return f"{name}:{digest.hexdigest()}:{hashlib.sha256(spec.encode()).hexdigest()[:16]}"
