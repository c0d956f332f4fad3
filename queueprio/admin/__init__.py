"""queueprio in the Django admin: configuration is editable; the ledger and the metrics are read-only.

One module per concern; importing this package registers them all.
"""

from __future__ import annotations

from . import config, dashboard, jobs

__all__ = ["config", "dashboard", "jobs"]
