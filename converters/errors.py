"""Errors raised by converters while running: the job fails with this message, the worker lives."""

from __future__ import annotations


class ConversionError(Exception):
    """The input could not be converted (malformed, too large, unsafe). The message says why."""
