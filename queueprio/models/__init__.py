"""queueprio's tables. Declarative: the state transitions live on their QuerySets (``querysets``).

``queueprio.models`` is the one import path for all of them (Django finds the models here).
"""

from __future__ import annotations

from .choices import (
    ACTIVE_STATES,
    FINISHED_STATES,
    WAITING_STATES,
    AgingReason,
    JobState,
    PrioritySource,
    QuotaPolicy,
    RejectionReason,
)
from .config import Band, TaskPriority, UrgentQuota
from .ledger import AgingStep, Job
from .rejections import Rejection
from .telemetry import BandSample, Dashboard, DepthSample, MetricTotal, MinuteStat, RollupWatermark

__all__ = [
    "ACTIVE_STATES",
    "FINISHED_STATES",
    "WAITING_STATES",
    "AgingReason",
    "AgingStep",
    "Band",
    "BandSample",
    "Dashboard",
    "DepthSample",
    "Job",
    "JobState",
    "MetricTotal",
    "MinuteStat",
    "PrioritySource",
    "QuotaPolicy",
    "Rejection",
    "RejectionReason",
    "RollupWatermark",
    "TaskPriority",
    "UrgentQuota",
]
