"""File converters (CSV, JSON, XML, YAML, XLSX, images) that run as prioritised Celery tasks."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import convert, convert_batch
    from .registry import converter

__all__ = ["convert", "convert_batch", "converter"]

_LAZY = {"convert": "converters.api", "convert_batch": "converters.api", "converter": "converters.registry"}


def __getattr__(name: str) -> Any:
    # Lazy, so that importing the package doesn't need Django's app registry.
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'converters' has no attribute {name!r}")
