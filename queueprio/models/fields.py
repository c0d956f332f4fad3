"""Field helpers shared by the tables: the priority scale's range as a database constraint."""

from __future__ import annotations

from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from ..priority import LEAST_URGENT, MOST_URGENT


def in_range(field: str, *, nullable: bool = False) -> Q:
    """The DB-side twin of ``validate_priority``: the scale's range as a constraint."""
    check = Q(**{f"{field}__gte": MOST_URGENT, f"{field}__lte": LEAST_URGENT})
    return check | Q(**{f"{field}__isnull": True}) if nullable else check


PRIORITY_HELP = _("1 = most urgent … 10 = least urgent. RabbitMQ receives 11 minus this value.")
