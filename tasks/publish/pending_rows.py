"""The row `.delay()` writes in the caller's transaction: one prepared INSERT.

A PENDING job row under a new task id needs none of the recorder's merge rules: a
plain `INSERT` with bound parameters, run on the driver's connection (not through the
recorder's generic upsert or Django's quoting of parameters into the SQL text), for
every job of the transaction at once. The row carries what publishing needs
(`message`: the apply_async options) and `publish_due_at`, so it is the outbox message
too: the relay (tasks.publish.relay) publishes it after the commit.

- SQLite: the recorder's value conversions (tasks.record.upsert.value_converter),
  without the generic upsert's merge rules, which a new row never needs.
- PostgreSQL: JSON columns as jsonb parameters, server-side binding.

A task id that already has a row (an explicit `task_id=` reused) keeps that row:
`ON CONFLICT DO NOTHING`, as a PENDING event loses to every other state anyway. Other
databases use the generic upsert (tasks.record.service).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache, partial
from typing import TYPE_CHECKING, Any

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from tasks.models import Job
from tasks.record.service import job_row, write_in_transaction
from tasks.record.upsert import value_converter

if TYPE_CHECKING:
    from tasks.record.events import JobEvent


def write(connection: Any, jobs: Sequence[JobEvent]) -> None:
    """Insert the jobs' PENDING rows, due for the relay (in the open transaction)."""
    now = timezone.now()
    if connection.vendor not in ("postgresql", "sqlite"):
        write_in_transaction(jobs)
        Job.objects.filter(task_id__in=[event.task_id for event in jobs]).due_now(now)
        return
    defaults = _defaults()
    rows = [{**defaults, **job_row(event, now), "publish_due_at": now} for event in jobs]
    connection.ensure_connection()
    insert = _insert(Job, connection.vendor)
    if connection.vendor == "sqlite":
        connection.connection.executemany(insert.sql, [insert.values(row) for row in rows])
        return
    import psycopg  # installed only where PostgreSQL is used

    # A server-side-binding cursor (Django's own quotes parameters into the SQL text),
    # wrapped by Django's for its error translation.
    with connection.make_cursor(psycopg.Cursor(connection.connection)) as cursor:
        if len(rows) == 1:
            cursor.execute(insert.sql, insert.values(rows[0]))
        else:
            cursor.executemany(insert.sql, [insert.values(row) for row in rows])


class _Insert:
    """A model's plain INSERT for one database, with each column's conversion to what
    Django's backend stores (SQLite: JSON text, naive UTC datetimes; PostgreSQL: jsonb
    parameters)."""

    def __init__(self, model: Any, vendor: str) -> None:
        fields = [field for field in model._meta.concrete_fields if field.name != "id"]
        columns = ", ".join(f'"{field.column}"' for field in fields)
        marks = ", ".join("?" if vendor == "sqlite" else "%s" for _ in fields)
        # Identifiers from model metadata; every value is a bound parameter.
        self.sql = (
            f'INSERT INTO "{model._meta.db_table}" ({columns}) VALUES ({marks}) '  # noqa: S608
            "ON CONFLICT (task_id) DO NOTHING"
        )
        self.columns = [(field.column, _converter(field, vendor)) for field in fields]

    def values(self, row: dict[str, Any]) -> list[Any]:
        return [
            value if convert is None or value is None else convert(value)
            for column, convert in self.columns
            for value in (row.get(column),)
        ]


def _converter(field: Any, vendor: str) -> Callable[[Any], Any] | None:
    if vendor == "sqlite":
        return value_converter(field)
    if field.get_internal_type() == "JSONField":
        from psycopg.types.json import Jsonb  # installed only where PostgreSQL is used

        return partial(Jsonb, dumps=_json)
    return None


@cache
def _insert(model: Any, vendor: str) -> _Insert:
    return _Insert(model, vendor)


def _json(value: Any) -> str:
    return json.dumps(value, cls=_Encoder, separators=(",", ":"))


class _Encoder(DjangoJSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, datetime):
            return o.isoformat()  # with microseconds, unlike DjangoJSONEncoder's
        return super().default(o)


@cache
def _defaults() -> dict[str, Any]:
    """Every NOT NULL column's default, which a row written by SQL must carry itself."""
    return {
        field.column: field.get_default()
        for field in Job._meta.concrete_fields
        # column is never None on a concrete field; the check narrows the stubs' str | None.
        if not field.null and field.has_default() and field.column is not None
    }
