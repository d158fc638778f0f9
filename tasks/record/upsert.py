"""Conditional bulk upserts: many rows, one statement, each column merged by a rule.

`INSERT ... ON CONFLICT (key) DO UPDATE SET col = CASE ... END` is the same SQL on
PostgreSQL and on SQLite (>= 3.24), and every expression in the SET list sees the row as
it was before the statement, so the rules below compose. Rows are grouped by the set of
columns they carry, because one statement needs one column list.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, NamedTuple

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.db.models import Field, ForeignObjectRel, Model

# Rows per statement on SQLite: a full chunk, then the rest in powers of two. The
# sqlite3 module keeps its last 128 statements prepared, and a multi-row upsert's
# prepared program is about 2 KiB per row; a statement for every possible remainder
# would fill that cache with one-off programs, tens of MiB the recorder never gets
# back. With these sizes, a column set has at most 8 statements, each reused. 128 rows stay far
# below SQLite's 32766 bound variables.
STATEMENT_ROWS = (128, 64, 32, 16, 8, 4, 2, 1)


class Merge(Enum):
    """How a column of an existing row takes the incoming value."""

    FILL = "fill"  # only where the row's value is still empty (NULL or '')
    EARLIEST = "earliest"  # the smaller of the two
    WINNER = "winner"  # only where the plan's `wins` condition holds
    ALWAYS = "always"  # always the incoming value
    INSERT_ONLY = "insert_only"  # never changed once inserted


class _Parts(NamedTuple):
    """One column set's statement, built once."""

    head: str  # INSERT INTO table (columns) VALUES
    placeholders: str  # one row's "(%s, %s, ...)"
    tail: str  # ON CONFLICT ...
    converters: list[tuple[str, Any]]
    defaults: dict[str, Any]
    table: str
    columns: str
    datetimes: tuple[str, ...]
    renamed: tuple[tuple[str, str], ...]  # (field name, column name) where they differ


@dataclass(frozen=True)
class UpsertPlan:
    model: type[Model]
    key: str
    merges: Mapping[str, Merge]
    #: SQL condition; `{old}` is the table's row, `{new}` the incoming (EXCLUDED) row.
    wins: str = "TRUE"

    #: Values for columns a row does not carry, used only when the row is inserted.
    insert_defaults: Mapping[str, Any] = dataclass_field(default_factory=dict)
    #: Statement parts built so far, by (column set, database vendor).
    _statements: dict[tuple[Any, ...], Any] = dataclass_field(
        default_factory=dict, compare=False, repr=False
    )

    def execute(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Upsert rows; a row changes only the columns it carries (plus its merges)."""
        groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = defaultdict(list)
        for row in rows:
            groups[tuple(sorted(row))].append(row)
        with connection.cursor() as cursor:
            for carried, group in groups.items():
                if connection.vendor == "postgresql":
                    cursor.execute(self._recordset_sql(carried), [self._recordset(carried, group)])
                    continue
                for chunk in statement_chunks(group):
                    sql, params = self._statement(carried, chunk)
                    cursor.execute(sql, params)

    def _compiled_for(self, carried: tuple[str, ...]) -> _Parts:
        cache_key = (carried, connection.vendor)
        compiled = self._statements.get(cache_key)
        if compiled is None:
            compiled = self._statements[cache_key] = self._compiled(carried)
        return compiled

    def _recordset_sql(self, carried: tuple[str, ...]) -> str:
        """PostgreSQL: every row in one JSON document, typed by the table's own row type.

        The statement is the same short text for any number of rows (parsed and planned
        once), and its one parameter is built by the json module in C. Arrays per column
        (`unnest`) cost the recorder more than the rest of a batch together: psycopg
        quotes every element of a text array in Python (measured: 40% of the recorder's
        CPU, and the JSON columns' values encoded one by one besides).
        """
        cache_key = (carried, "recordset")
        sql = self._statements.get(cache_key)
        if sql is None:
            parts = self._compiled_for(carried)
            # Identifiers from model metadata; the rows are the one parameter.
            source = f"json_populate_recordset(NULL::{parts.table}, %s::json)"
            select = f" SELECT {parts.columns} FROM {source}"  # noqa: S608
            sql = self._statements[cache_key] = parts.head.replace(" VALUES ", select) + parts.tail
        return sql

    def _recordset(self, carried: tuple[str, ...], rows: list[Mapping[str, Any]]) -> str:
        parts = self._compiled_for(carried)
        defaults, times, renamed = parts.defaults, parts.datetimes, parts.renamed
        documents = []
        for row in rows:
            document = {**defaults, **row}
            for name in times:
                value = document.get(name)
                if value is not None and not isinstance(value, str):
                    document[name] = value.isoformat()
            for name, column in renamed:
                document[column] = document.pop(name)
            documents.append(document)
        # The JSON columns' values are nested as they are, encoded as Django's JSONField
        # would encode them (datetimes, UUIDs and Decimals inside a result or arguments).
        return json.dumps(documents, cls=DjangoJSONEncoder, separators=(",", ":"))

    def _row_params(self, carried: tuple[str, ...], row: Mapping[str, Any]) -> list[Any]:
        parts = self._compiled_for(carried)
        full = {**parts.defaults, **row}
        return [
            value if convert is None or value is None else convert(value)
            for name, convert in parts.converters
            for value in (full[name],)
        ]

    def _statement(
        self, carried: tuple[str, ...], rows: list[Mapping[str, Any]]
    ) -> tuple[str, list[Any]]:
        parts = self._compiled_for(carried)
        sql = parts.head + ", ".join([parts.placeholders] * len(rows)) + parts.tail
        params: list[Any] = []
        for row in rows:
            params.extend(self._row_params(carried, row))
        return sql, params

    def _compiled(self, carried: tuple[str, ...]) -> _Parts:
        """The statement's parts for one column set, built once: building them is most of
        the cost of a one-row write, such as `.delay()` inside a transaction. Cached per
        column set only (not per row count), so the cache stays a few entries."""
        meta = self.model._meta
        defaults = {k: v for k, v in self.insert_defaults.items() if k not in carried}
        names = (*carried, *defaults)
        fields = [meta.get_field(name) for name in names]
        quote = connection.ops.quote_name
        table = quote(meta.db_table)
        columns = ", ".join(quote(_column(field)) for field in fields)
        placeholders = "(" + ", ".join(self._placeholder(field) for field in fields) + ")"
        converters = [(field.name, value_converter(field)) for field in fields]
        wins = self.wins.format(old=table, new="excluded")
        assignments = []
        for field in fields:
            if field.name == self.key or field.name in defaults:
                continue
            merge = self.merges.get(field.name, Merge.WINNER)
            column = quote(_column(field))
            old, new = f"{table}.{column}", f"excluded.{column}"
            if merge is Merge.INSERT_ONLY:
                continue
            if merge is Merge.ALWAYS:
                value = new
            elif merge is Merge.EARLIEST:
                value = f"CASE WHEN {new} < {old} THEN {new} ELSE {old} END"
            elif merge is Merge.FILL:
                empty = f"{old} IS NULL" if field.null else f"{old} = ''"
                value = f"CASE WHEN {empty} THEN {new} ELSE {old} END"
            else:
                value = f"CASE WHEN {wins} THEN {new} ELSE {old} END"
            assignments.append(f"{column} = {value}")
        # Identifiers come from model metadata; every value is a bound parameter.
        key = quote(_column(meta.get_field(self.key)))
        action = "DO UPDATE SET " + ", ".join(assignments) if assignments else "DO NOTHING"
        return _Parts(
            head=f"INSERT INTO {table} ({columns}) VALUES ",  # noqa: S608
            placeholders=placeholders,
            tail=f" ON CONFLICT ({key}) {action}",
            converters=converters,
            defaults=defaults,
            table=table,
            columns=columns,
            datetimes=tuple(f.name for f in fields if f.get_internal_type() == "DateTimeField"),
            renamed=tuple((f.name, _column(f)) for f in fields if f.name != _column(f)),
        )

    @staticmethod
    def _placeholder(field: Any) -> str:
        if connection.vendor == "postgresql" and field.get_internal_type() == "JSONField":
            return "%s::jsonb"
        return "%s"


def _column(field: Field[Any, Any] | ForeignObjectRel) -> str:
    """The column a field is stored in: an upsert names only the model's concrete fields."""
    if isinstance(field, ForeignObjectRel) or field.column is None:
        raise TypeError(f"{field.name!r} has no column of its own")
    return field.column


def statement_chunks(rows: list[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """`rows` cut into chunks whose sizes are all in STATEMENT_ROWS, largest first."""
    chunks = []
    start = 0
    for size in STATEMENT_ROWS:
        while len(rows) - start >= size:
            chunks.append(rows[start : start + size])
            start += size
    return chunks


_PLAIN_TYPES = {
    "AutoField",
    "BigAutoField",
    "BigIntegerField",
    "BooleanField",
    "CharField",
    "IntegerField",
    "PositiveIntegerField",
    "PositiveSmallIntegerField",
    "SmallIntegerField",
    "TextField",
}


def value_converter(field: Any) -> Any:
    """None where the value goes to the driver as it is, else the field's own preparation.

    Django's get_db_prep_save on every value of every row was most of a batch's cost;
    strings and integers need none of it.
    """
    kind = field.get_internal_type()
    if kind in _PLAIN_TYPES:
        return None
    if kind == "DateTimeField":
        if connection.vendor == "postgresql":
            return None  # the driver sends aware datetimes as they are
        if connection.vendor == "sqlite":
            return _sqlite_datetime
    if kind == "JSONField" and connection.vendor == "sqlite":
        # What JSONField.get_db_prep_save ends in for a plain value, without the
        # expression checks on the way (a few µs per value, four values per job).
        return _json_text(field.encoder)
    return lambda value: field.get_db_prep_save(value, connection)


def _json_text(encoder: type[json.JSONEncoder]) -> Any:
    """`json.dumps(value, cls=encoder)`, by the json module's cached C encoder when the
    value is plain JSON (the same text: the field's encoder only adds `default`). A
    `cls` builds a new encoder object per call, the larger part of encoding `[1]`."""

    def convert(value: Any) -> str:
        try:
            return json.dumps(value)
        except TypeError:  # a datetime, UUID, Decimal ... inside: the field's encoder
            return json.dumps(value, cls=encoder)

    return convert


def _sqlite_datetime(value: datetime) -> str:
    """What Django's SQLite backend stores for an aware datetime (USE_TZ): naive UTC text."""
    if value.tzinfo is UTC:
        return str(value.replace(tzinfo=None))  # timezone.now()'s, the common case
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return str(value)
