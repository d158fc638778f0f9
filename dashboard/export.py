"""The explorer's CSV export: streamed row by row, bounded, redacted.

Streamed so that a large export never sits in memory; bounded by TASKS_EXPORT_LIMIT;
arguments and results go through dashboard.redaction like every page; and a cell that
a spreadsheet would run as a formula (=, +, -, @ first) is prefixed with a quote.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet

from dashboard.redaction import redact
from tasks.models import Job

COLUMNS = (
    "task_id",
    "name",
    "status",
    "queue",
    "worker",
    "attempts",
    "created_at",
    "sent_at",
    "started_at",
    "finished_at",
    "runtime_seconds",
    "args",
    "kwargs",
    "result",
    "error",
    "correlation_id",
    "parent_id",
    "root_id",
    "group_id",
    "fingerprint",
    "dead_lettered_at",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A file whose write returns the line, for csv.writer inside a generator."""

    def write(self, value: str) -> str:
        return value


def csv_lines(jobs: QuerySet[Job], limit: int) -> Iterator[str]:
    """The header, then one line per job (at most `limit`), newest first."""
    writer = csv.writer(_Echo())
    yield writer.writerow(COLUMNS)
    for job in jobs[:limit].iterator(chunk_size=2000):
        yield writer.writerow([_cell(job, column) for column in COLUMNS])


def _cell(job: Job, column: str) -> str:
    value: Any = job.runtime_seconds if column == "runtime_seconds" else getattr(job, column)
    if value is None:
        text = ""
    elif column in ("args", "kwargs", "result"):
        text = json.dumps(redact(value), cls=DjangoJSONEncoder)
    elif column == "runtime_seconds":
        text = f"{value:.3f}"
    else:
        text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return safe_cell(text)


def safe_cell(text: str) -> str:
    """`text` as a spreadsheet shows it, never runs it: a leading =, +, -, @, tab or
    carriage return is prefixed with a quote (CSV injection)."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text
