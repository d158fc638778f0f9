"""Batches of any size reuse a few statements: a bounded set of SQL texts per column set.

The database driver keeps prepared statements by their text (the sqlite3 module its last
128). A text per batch size filled that cache with one-off multi-row programs of about
2 KiB per row, and the recorder's memory grew with it (`make bench`'s memory check).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from tasks.models import Job, JobStatus
from tasks.record import service
from tasks.record.events import JobEvent
from tasks.record.upsert import STATEMENT_ROWS, statement_chunks

pytestmark = pytest.mark.django_db


def sent(task_id: str) -> JobEvent:
    return JobEvent(task_id, JobStatus.SENT, 0, facts={"name": "x.y", "args": [1]})


def test_batches_of_every_size_from_1_to_300_use_at_most_eight_statements() -> None:
    texts: set[str] = set()

    def remember_text(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        texts.add(sql)  # the statement's text as the driver gets it, without its values
        return execute(sql, params, many, context)

    with connection.execute_wrapper(remember_text):
        for size in range(1, 301):
            service.write([sent(f"{size}-{n}") for n in range(size)], [])
    upserts = {text for text in texts if text.startswith("INSERT")}
    assert 1 <= len(upserts) <= len(STATEMENT_ROWS)
    assert Job.objects.count() == sum(range(1, 301))


@pytest.mark.parametrize("size", [0, 1, 127, 128, 129, 200, 255, 256, 1000])
def test_chunks_keep_every_row_once_in_order_and_use_only_the_fixed_sizes(size: int) -> None:
    rows = [{"n": n} for n in range(size)]
    chunks = statement_chunks(rows)
    assert [row for chunk in chunks for row in chunk] == rows
    assert all(len(chunk) in STATEMENT_ROWS for chunk in chunks)
    # The full chunks, then at most one chunk of each smaller size.
    full, rest = divmod(size, STATEMENT_ROWS[0])
    assert len(chunks) == full + bin(rest).count("1")
