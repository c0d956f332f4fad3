"""One lock per name, held until the current transaction ends: serialises racers on a key."""

from __future__ import annotations

from django.db import transaction


def serialise_on(name: str) -> None:
    """Wait for, then hold until commit or rollback, the lock called ``name``.

    On PostgreSQL a transaction-scoped advisory lock (``pg_advisory_xact_lock``; two names that
    hash alike only wait for each other). On SQLite there is nothing to take: an IMMEDIATE
    transaction already holds the database's write lock. Elsewhere, nothing is serialised.
    """
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [name])
