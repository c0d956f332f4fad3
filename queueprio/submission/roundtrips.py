"""A single submission's transaction in two database round trips on PostgreSQL.

Under ``transaction.atomic()`` psycopg sends ``BEGIN`` on its own before the first statement,
and Django sends ``COMMIT`` on its own after the last: with the band's conditional
``UPDATE … RETURNING`` and the row's ``INSERT … RETURNING id`` that is four round trips, each
one waited for (measured 1.13 ms for the transaction on loopback here, 0.69 ms in two trips;
docs/benchmarks.md). The message has to be published between the
admission (which decides the band, its time limits and whether the job is held) and the commit,
so the transaction can't be one statement; but ``BEGIN`` can travel with the first statement
and ``COMMIT`` with the ``INSERT``, as one simple-protocol query each (psycopg's client-side
binding cursor, Django's default, sends a query with its parameters merged, several statements
allowed). Two round trips; the statements, their order, the locks and the admission check are
the same. (psycopg's pipeline mode was measured too: it syncs after ``BEGIN`` and on leaving
the pipeline, six round trips instead of four.)

The transaction is then opened and ended by hand on a connection Django keeps in autocommit
mode, so nothing in the block may open ``transaction.atomic()`` (a single submission's hooks
don't); any exception rolls it back before it propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import connection
from django.db.models.sql import InsertQuery

from ..models import Job

#: Off: ``atomic()`` as before, every statement waited for on its own (the tests' and bench's control).
ENABLED = True


def available() -> bool:
    """PostgreSQL through psycopg 3's client-side binding cursor, outside a caller's transaction."""
    if not ENABLED or connection.vendor != "postgresql" or connection.in_atomic_block:
        return False
    if connection.settings_dict.get("OPTIONS", {}).get("server_side_binding"):
        return False  # extended protocol: one statement per query
    connection.ensure_connection()
    return hasattr(connection.connection, "pgconn")  # psycopg 3, not psycopg2


class _Transaction:
    """``BEGIN`` prefixed to the block's first statement; ``COMMIT`` appended by :func:`insert_committing`."""

    def __init__(self) -> None:
        self.begun = False
        self.committed = False

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        if self.begun or many:
            return execute(sql, params, many, context)
        self.begun = True
        result = execute("BEGIN; " + sql, params, many, context)
        context["cursor"].cursor.nextset()  # past BEGIN's result, to the statement's own
        return result


#: The open one-trip transaction of this thread (Django's connections are per thread too).
_current: ContextVar[_Transaction | None] = ContextVar("queueprio_one_trip", default=None)


@contextmanager
def one_trip_each() -> Iterator[None]:
    """A transaction whose ``BEGIN`` and ``COMMIT`` cost no round trip of their own.

    The block must end with :func:`insert_committing` (which commits); an exception rolls back.
    """
    tx = _Transaction()
    token = _current.set(tx)
    try:
        with connection.execute_wrapper(tx):
            yield
        if tx.begun and not tx.committed:  # nothing committed it: don't leave it open
            with connection.cursor() as cursor:
                cursor.execute("COMMIT")
    except BaseException:
        if tx.begun and not tx.committed:
            _rollback()
        raise
    finally:
        _current.reset(token)


def _rollback() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("ROLLBACK")
    except Exception:  # the connection is gone: Django replaces it on its next use
        connection.close()


def insert_committing(job: Job) -> None:
    """``INSERT`` ``job`` (``save(force_insert=True)``'s statement) and ``COMMIT``, in one query.

    No ``pre_save``/``post_save`` signals: nothing listens for the ledger's rows.
    """
    tx = _current.get()
    if tx is None:
        raise RuntimeError("insert_committing() outside one_trip_each()")
    meta = Job._meta
    query = InsertQuery(Job)
    query.insert_values([field for field in meta.concrete_fields if not field.primary_key], [job])
    compiler = query.get_compiler(connection=connection)
    compiler.returning_fields = [meta.pk]
    ((sql, params),) = compiler.as_sql()
    with connection.cursor() as cursor:
        # If the INSERT fails the COMMIT doesn't run: the transaction is left aborted, and
        # one_trip_each rolls it back as the error passes.
        cursor.execute(sql + "; COMMIT", params)
        tx.committed = True
        row = cursor.fetchone()
    job.pk = row[0]
    job._state.adding = False
    job._state.db = connection.alias
