"""Values a database refuses, made storable, so one odd job cannot block the recorder.

PostgreSQL rejects a NUL character in text and JSON, and JSON with NaN or Infinity
(Python's `json` writes them; JSON does not have them); SQLite's JSON check refuses the
latter too. A task may well return `float("nan")` or a string with a NUL in it. The
recorder writes a whole batch in one statement, so such a value would fail the batch,
and retrying it would fail forever while every other job's state waited behind it.

When a batch fails for its data (not its connection), the recorder writes its events one
by one, and an event the database still refuses is written once more as `storable()`
made it: NUL becomes U+FFFD and non-finite floats their names ("nan", "inf"), with a
warning in the log. The job's state is kept; only the unrepresentable values change.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from django.db import DataError, IntegrityError, connection

from tasks.record.events import JobEvent, ResultEvent

logger = logging.getLogger(__name__)

REPLACEMENT = "\ufffd"


def value(item: Any) -> Any:
    """The value with NULs and non-finite floats replaced, containers walked."""
    if isinstance(item, str):
        return item.replace("\x00", REPLACEMENT)
    if isinstance(item, float) and not math.isfinite(item):
        return str(item)
    if isinstance(item, Mapping):
        return {value(key): value(inner) for key, inner in item.items()}
    if isinstance(item, list | tuple):
        return [value(inner) for inner in item]
    return item


def job_event(event: JobEvent) -> JobEvent:
    return replace(event, facts=value(event.facts), state=value(event.state))


def result_event(event: ResultEvent) -> ResultEvent:
    fields = dict(value(event.fields))
    # django-celery-results keeps the result as JSON text: NaN is legal there for
    # Python's json, but a NUL (even escaped as \u0000) is not text PostgreSQL stores.
    for name in ("result", "traceback", "meta", "task_args", "task_kwargs"):
        if isinstance(fields.get(name), str):
            fields[name] = fields[name].replace("\\u0000", REPLACEMENT)
    return replace(event, fields=fields)


def write_apart(writer: Callable[..., None], jobs: list, results: list) -> None:
    """Write a refused batch event by event; make the refused ones storable (tasks.record.storable).

    A connection error on the way stops here: the entries stay unacknowledged and the
    next step writes them again (writes are idempotent).
    """
    pieces = [([job], []) for job in jobs] + [([], [result]) for result in results]
    for piece_jobs, piece_results in pieces:
        try:
            writer(piece_jobs, piece_results)
            continue
        except (DataError, IntegrityError) as exc:
            task_id = (piece_jobs or piece_results)[0].task_id
            logger.warning(
                "Job %s holds a value the database refuses (%s); stored with it replaced",
                task_id,
                exc,
            )
        fixed_jobs = [job_event(event) for event in piece_jobs]
        fixed_results = [result_event(event) for event in piece_results]
        try:
            writer(fixed_jobs, fixed_results)
        except (DataError, IntegrityError):
            logger.exception(
                "Dropping an event of job %s the database refuses: %r",
                task_id,
                (fixed_jobs or fixed_results)[0],
            )


def write_or_apart(writer: Callable[..., None], jobs: list, results: list) -> None:
    """`writer(jobs, results)`; if the database refuses a value, `write_apart`.

    Outside a transaction only (a refused statement breaks the caller's transaction).
    """
    try:
        writer(jobs, results)
    except (DataError, IntegrityError) as exc:
        if connection.in_atomic_block:
            raise
        logger.warning("A batch holds a value the database refuses (%s)", exc)
        write_apart(writer, jobs, results)
