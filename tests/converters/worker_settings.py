"""Settings for a worker a test starts with its own ``CONVERTERS_*`` values (JSON in the environment).

``tests.settings`` passes ``QUEUEPRIO_*`` settings through the environment, not the converters'
own; a worker started with ``DJANGO_SETTINGS_MODULE=tests.converters.worker_settings`` takes
``CONVERTERS_MAX_MEMORY_MB``, ``CONVERTERS_FILE_MODE`` and ``CONVERTERS_MAX_DECOMPRESSED_BYTES``
from there too.
"""

from __future__ import annotations

import json
import os

from tests.settings import *  # noqa: F403

for _name in ("MAX_MEMORY_MB", "FILE_MODE", "MAX_DECOMPRESSED_BYTES"):
    if f"CONVERTERS_{_name}" in os.environ:
        globals()[f"CONVERTERS_{_name}"] = json.loads(os.environ[f"CONVERTERS_{_name}"])
