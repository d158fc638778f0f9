"""The rows `.delay()` writes in the caller's transaction: one statement on PostgreSQL.

A PENDING job row and its outbox message are new rows under a new task id, so they
need none of the recorder's merge rules: one `INSERT` per table, both in one SQL
statement (a data-modifying CTE) whose parameters are two JSON documents. The
statement text is the same for any number of jobs; parameters are bound on the server
(Django's cursors quote them into the SQL text in Python). Measured on PostgreSQL 15
here: 0.04 ms to plan, 0.3 ms to run for one job (explicit preparation made no
difference), against two generic upserts of 0.2 ms planning and 0.4 ms each.

On SQLite, one prepared `INSERT` per table run on the driver's connection, with the
recorder's value conversions (tasks.upsert.value_converter) but not its generic upsert
or Django's cursor wrapper: the write per `.delay()` 437 → 288 µs under cProfile.

A task id that already has a row (an explicit `task_id=` reused) keeps that row:
`ON CONFLICT DO NOTHING`, as a PENDING event loses to every other state anyway. Other
databases use the generic upserts (tasks.recording, tasks.outbox).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from django.core.serializers.json import DjangoJSONEncoder

if TYPE_CHECKING:
    from tasks.outbox import Entry
    from tasks.recording import JobEvent


def write(connection: Any, jobs: Sequence[tuple[JobEvent, Entry]]) -> None:
    """Insert the jobs' PENDING rows and outbox messages (in the open transaction)."""
    from django.utils import timezone

    from tasks.recording import job_row

    if connection.vendor not in ("postgresql", "sqlite"):
        from tasks import outbox
        from tasks.recording import write_in_transaction

        write_in_transaction([event for event, _ in jobs])
        outbox.insert_entries([entry for _, entry in jobs])
        return
    now = timezone.now()
    job_defaults, outbox_defaults = _defaults()
    job_rows = [{**job_defaults, **job_row(event, now)} for event, _ in jobs]
    outbox_rows = [{**outbox_defaults, **entry.as_row(now)} for _, entry in jobs]
    connection.ensure_connection()
    if connection.vendor == "sqlite":
        _write_sqlite(connection.connection, job_rows, outbox_rows)
        return
    import psycopg

    with connection.make_cursor(psycopg.Cursor(connection.connection)) as cursor:
        cursor.execute(_statement(), [_json(job_rows), _json(outbox_rows)])


def _write_sqlite(
    driver_connection: Any, job_rows: list[dict[str, Any]], outbox_rows: list[dict[str, Any]]
) -> None:
    from tasks.models import Job, OutboxMessage

    for model, rows in ((Job, job_rows), (OutboxMessage, outbox_rows)):
        insert = _sqlite_insert(model)
        driver_connection.executemany(insert.sql, [insert.values(row) for row in rows])


class _SqliteInsert:
    """A model's plain INSERT for SQLite, with each column's conversion to what Django's
    SQLite backend stores (JSON text, naive UTC datetimes)."""

    def __init__(self, model: Any) -> None:
        from tasks.upsert import value_converter

        fields = [field for field in model._meta.concrete_fields if field.name != "id"]
        columns = ", ".join(f'"{field.column}"' for field in fields)
        marks = ", ".join("?" for _ in fields)
        # Identifiers from model metadata; every value is a bound parameter.
        self.sql = (
            f'INSERT INTO "{model._meta.db_table}" ({columns}) VALUES ({marks}) '  # noqa: S608
            "ON CONFLICT (task_id) DO NOTHING"
        )
        self.columns = [(field.column, value_converter(field)) for field in fields]

    def values(self, row: dict[str, Any]) -> list[Any]:
        return [
            value if convert is None or value is None else convert(value)
            for column, convert in self.columns
            for value in (row.get(column),)
        ]


@cache
def _sqlite_insert(model: Any) -> _SqliteInsert:
    return _SqliteInsert(model)


def _json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, cls=_Encoder, separators=(",", ":"))


class _Encoder(DjangoJSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, datetime):
            return o.isoformat()  # with microseconds, unlike DjangoJSONEncoder's
        return super().default(o)


@cache
def _defaults() -> tuple[dict[str, Any], dict[str, Any]]:
    """Every NOT NULL column's default, which a row written by SQL must carry itself."""
    from tasks.models import Job, OutboxMessage

    def defaults(model: Any) -> dict[str, Any]:
        return {
            field.column: field.get_default()
            for field in model._meta.concrete_fields
            if not field.null and field.has_default()
        }

    return defaults(Job), defaults(OutboxMessage)


@cache
def _statement() -> str:
    from django.db import connection

    from tasks.models import Job, OutboxMessage

    quote = connection.ops.quote_name

    def insert(model: Any) -> str:
        table = quote(model._meta.db_table)
        columns = ", ".join(
            quote(field.column) for field in model._meta.concrete_fields if field.name != "id"
        )
        # Identifiers from model metadata; the rows are the statement's parameters.
        return (
            f"INSERT INTO {table} ({columns}) SELECT {columns} "  # noqa: S608
            f"FROM json_populate_recordset(NULL::{table}, %s::json) "
            "ON CONFLICT (task_id) DO NOTHING"
        )

    return f"WITH jobs AS ({insert(Job)}) {insert(OutboxMessage)}"
