"""The converters' settings, read from Django settings on every access (``CONVERTERS_<NAME>``)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from django.conf import settings as django_settings

PREFIX = "CONVERTERS_"


@dataclass(frozen=True)
class Defaults:
    #: Every path a converter reads or writes is confined to this directory.
    ROOT: str = "var/files"
    #: Permission bits of converted files, e.g. ``0o640``. ``None``: ``0o666`` less the process's
    #: umask, like any file the process creates (``0o644`` under the usual umask ``022``).
    FILE_MODE: int | None = None
    #: Memory one worker process may use, in MiB: its data limit (``RLIMIT_DATA``), set in each
    #: worker child. A document estimated to need more than this less 256 MiB (the process itself)
    #: is refused before it is parsed. ``None``: no limit and no estimates. The default fits the
    #: largest image accepted (50 megapixels to lossy WEBP: up to 1.25 GiB).
    MAX_MEMORY_MB: int | None = 1536
    #: Most bytes an XLSX workbook's zip members may hold once decompressed, all together.
    #: ``None``: no limit (the per-member ratio and memory checks still apply).
    MAX_DECOMPRESSED_BYTES: int | None = 512 * 1024 * 1024


class Settings:
    """Attribute access reads ``CONVERTERS_<NAME>`` now, falling back to :class:`Defaults`."""

    _defaults = Defaults()
    _names = frozenset(f.name for f in fields(Defaults))

    def __getattr__(self, name: str) -> Any:
        if name not in self._names:
            raise AttributeError(f"unknown converters setting {name!r}")
        return getattr(django_settings, PREFIX + name, getattr(self._defaults, name))


settings = Settings()
