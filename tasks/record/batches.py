"""Batch rows: one per group or chord, its members counted as the recorder writes them.

A job is a member of a batch when its message names a group and its position in it
(Celery's `group` and `group_index` headers: every task of a `group`, every task of a
chord's header). A chord's body carries the group id too but no position: it is the
batch's callback (`Batch.callback_id`, from the members' `chord` embed), not a member.

Counted once, like the tallies (tasks.record.tallies): `Finishing.read` reads the rows
of the batch's events before the job upsert, and from what a row was and what the event
makes of it this module decides, per member:
- `total` + 1 when the job first becomes a member (its row had no group position yet);
- `succeeded`, `failed` or `cancelled` + 1 when the job is a member in a final status
  and was not both before (so a member whose final event was recorded before its
  message's facts is counted when the facts come). FAILURE is failed, dead-lettered or
  not; REVOKED is cancelled; RETRY is not final (another attempt is due).
A redelivered or late event finds the row as it left it and counts nothing. The cost
is one additive upsert per flush that has members (no read of its own: the read is the
tallies'), nothing for a flush without.

Two recorders (one beside each worker) may hold events of the same member at once, its
SENT and its RECEIVED say: both would read "not a member yet" and both add it. On
PostgreSQL a flush with members therefore takes a transaction-scoped advisory lock
before that read (`serialise`), so the second reads what the first wrote; flushes
without members never wait. SQLite serialises writers anyway (IMMEDIATE transactions).
Rows `.delay()` writes with the caller's COMMIT (tasks.record.service
.write_in_transaction) are new: their members join there (`joined`), with no read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connection

from tasks import lifecycle
from tasks.models import JobStatus
from tasks.observations import Batch, BatchKind
from tasks.record.events import CHORD_CALLBACK, JobEvent

#: `name` of a batch whose members run different tasks.
MIXED = "mixed"
#: The advisory lock that serialises counting members on PostgreSQL (an arbitrary
#: number; tasks.publish.uniqueness's locks are hashes of their keys).
COUNTING_LOCK = 0x7461736B62617463  # "taskbatc"

_COUNTED: dict[str, str] = {
    JobStatus.SUCCESS: "succeeded",
    JobStatus.FAILURE: "failed",
    JobStatus.REVOKED: "cancelled",
}


class Known(NamedTuple):
    """What `Finishing.read` read of a job row before the upsert."""

    status: str
    name: str
    group_id: str
    group_index: int | None
    finished_at: datetime | None


@dataclass(slots=True)
class _Change:
    """What one flush adds to one batch."""

    kind: str
    name: str
    callback_id: str
    created_at: datetime
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    last_finished_at: datetime | None = None


def is_member(facts: Mapping[str, Any]) -> bool:
    """The event's facts place its job in a batch (the rows to read before the upsert)."""
    return facts.get("group_index") is not None and bool(facts.get("group_id"))


def serialise() -> None:
    """Wait for any other recorder counting members (PostgreSQL; until this transaction
    ends). Call before reading the members' rows."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [COUNTING_LOCK])


def joined(events: Sequence[JobEvent]) -> list[tuple[str, _Change]]:
    """Batch rows for members whose rows are being inserted now (none existed)."""
    return changes([event for event in events if is_member(event.facts)], {})


def changes(events: Sequence[JobEvent], known: Mapping[str, Known]) -> list[tuple[str, _Change]]:
    """The batch rows these events add to, as upsert rows, ordered by group id."""
    batches: dict[str, _Change] = {}
    for event in events:
        row = known.get(event.task_id)
        facts = event.facts
        group = row.group_id if row is not None and row.group_id else facts.get("group_id")
        index = (
            row.group_index
            if row is not None and row.group_index is not None
            else facts.get("group_index")
        )
        if not group or index is None:
            continue
        was_member = row is not None and bool(row.group_id) and row.group_index is not None
        was_final = row is not None and row.status in lifecycle.TERMINAL
        if was_final:
            assert row is not None
            status, finished = row.status, row.finished_at
        elif event.status in lifecycle.TERMINAL:
            status, finished = event.status, event.state.get("finished_at") or event.at
        else:
            status, finished = "", None
        joins = not was_member
        ends = bool(status) and not (was_member and was_final)
        if not joins and not ends:
            continue
        change = batches.get(group)
        if change is None:
            change = batches[group] = _Change(
                kind=BatchKind.GROUP, name="", callback_id="", created_at=event.at
            )
        change.created_at = min(change.created_at, event.at)
        if joins:
            change.total += 1
            callback = facts.get(CHORD_CALLBACK)
            if callback:
                change.kind, change.callback_id = BatchKind.CHORD, callback
            name = facts.get("name") or (row.name if row is not None else "") or ""
            if name:
                change.name = name if change.name in ("", name) else MIXED
        if ends:
            counted = _COUNTED.get(status)
            if counted:
                setattr(change, counted, getattr(change, counted) + 1)
            if finished is not None and (
                change.last_finished_at is None or finished > change.last_finished_at
            ):
                change.last_finished_at = finished
    return [(group, batches[group]) for group in sorted(batches)]


_COLUMNS = (
    "group_id",
    "kind",
    "name",
    "callback_id",
    "total",
    "succeeded",
    "failed",
    "cancelled",
    "created_at",
    "last_finished_at",
)


def add(rows: Sequence[tuple[str, _Change]]) -> None:
    """One statement: insert each batch or add to it (counts added, the earliest
    creation, the latest finish; the kind turns chord, the name 'mixed' on a second task)."""
    if not rows:
        return
    table = connection.ops.quote_name(Batch._meta.db_table)
    quote = connection.ops.quote_name
    big, small = ("GREATEST", "LEAST") if connection.vendor == "postgresql" else ("MAX", "MIN")

    def old(column: str) -> str:
        return f"{table}.{quote(column)}"

    def new(column: str) -> str:
        return f"EXCLUDED.{quote(column)}"

    updates = [
        *(f"{c} = {old(c)} + {new(c)}" for c in ("total", "succeeded", "failed", "cancelled")),
        f"created_at = {small}({old('created_at')}, {new('created_at')})",
        # NULL-safe: SQLite's MAX(x, NULL) is NULL.
        f"last_finished_at = {big}(COALESCE({old('last_finished_at')}, {new('last_finished_at')}),"
        f" COALESCE({new('last_finished_at')}, {old('last_finished_at')}))",
        f"kind = CASE WHEN {new('kind')} = '{BatchKind.CHORD}' THEN {new('kind')}"
        f" ELSE {old('kind')} END",
        f"callback_id = CASE WHEN {old('callback_id')} = '' THEN {new('callback_id')}"
        f" ELSE {old('callback_id')} END",
        f"name = CASE WHEN {new('name')} = '' OR {new('name')} = {old('name')} THEN {old('name')}"
        f" WHEN {old('name')} = '' THEN {new('name')} ELSE '{MIXED}' END",
    ]
    row_sql = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
    sql = (
        f"INSERT INTO {table} ({', '.join(quote(c) for c in _COLUMNS)}) VALUES "  # noqa: S608
        + ", ".join([row_sql] * len(rows))
        + f" ON CONFLICT ({quote('group_id')}) DO UPDATE SET "
        + ", ".join(updates)
    )
    adapt = connection.ops.adapt_datetimefield_value
    params: list[Any] = []
    for group, change in rows:
        params += [
            group,
            str(change.kind),
            change.name[:255],
            change.callback_id,
            change.total,
            change.succeeded,
            change.failed,
            change.cancelled,
            adapt(change.created_at),
            adapt(change.last_finished_at) if change.last_finished_at else None,
        ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
