"""The layer's SQLite backend checkpoints the WAL from a thread, not inside a COMMIT.

Each test opens its own database file through the layer's backend (whatever database
the suite runs on), commits through Django's wrapper, and reads the main database
file alone — a copy without its `-wal` — to see what a checkpoint has copied there.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db.utils import ConnectionHandler

from tasks.publish.db_backends import sqlite_checkpoints

COMMITS = 50  # a few dozen pages: far below both automatic-checkpoint thresholds


@pytest.fixture(autouse=True)
def _own_databases(django_db_blocker: Any) -> Iterator[None]:
    """These tests open their own database files, not the suite's test database."""
    with django_db_blocker.unblock():
        yield


@pytest.fixture
def open_wrapper(tmp_path: Path) -> Iterator[Any]:
    """Opens the layer's SQLite backend on a file (`open_wrapper(path)`), closes it after."""
    handlers: list[ConnectionHandler] = []

    def open_at(path: Path) -> Any:
        handler = ConnectionHandler(
            {
                "default": {
                    "ENGINE": "tasks.publish.db_backends.sqlite3",
                    "NAME": str(path),
                    "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;"},
                }
            }
        )
        handlers.append(handler)
        return handler["default"]

    yield open_at
    for handler in handlers:
        handler.close_all()


def _commit_rows(wrapper: Any, count: int) -> None:
    with wrapper.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS item (id integer PRIMARY KEY, body text)")
    for i in range(count):
        wrapper.set_autocommit(False)
        with wrapper.cursor() as cursor:
            cursor.execute("INSERT INTO item (body) VALUES (%s)", [f"row {i}" * 20])
        wrapper.commit()
        wrapper.set_autocommit(True)


def _rows_in_main_file(path: Path, tmp_path: Path) -> int:
    """Rows a reader sees in the database file without its write-ahead log."""
    copy = tmp_path / f"copy-{time.monotonic_ns()}.sqlite3"
    shutil.copyfile(path, copy)
    reader = sqlite3.connect(copy)
    try:
        tables = reader.execute("SELECT count(*) FROM sqlite_master WHERE name = 'item'")
        if tables.fetchone()[0] == 0:
            return 0
        return reader.execute("SELECT count(*) FROM item").fetchone()[0]
    finally:
        reader.close()


def _wait_for_rows(path: Path, tmp_path: Path, expected: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    found = _rows_in_main_file(path, tmp_path)
    while found < expected and time.monotonic() < deadline:
        time.sleep(0.1)
        found = _rows_in_main_file(path, tmp_path)
    return found


def test_commits_leave_the_checkpoint_to_the_thread(open_wrapper: Any, tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite3"
    wrapper = open_wrapper(path)
    wrapper.ensure_connection()
    (pages,) = wrapper.connection.execute("PRAGMA wal_autocheckpoint").fetchone()
    assert pages == sqlite_checkpoints.FOREGROUND_AUTOCHECKPOINT

    _commit_rows(wrapper, COMMITS)

    # No COMMIT crossed a threshold, so only the thread can have copied the rows over.
    assert _wait_for_rows(path, tmp_path, COMMITS) == COMMITS
    assert wrapper.checkpointer is sqlite_checkpoints.for_database(str(path))


def test_a_replaced_database_file_is_checkpointed_too(open_wrapper: Any, tmp_path: Path) -> None:
    """A test database is deleted and created again under its name: the thread follows."""
    path = tmp_path / "rebuilt.sqlite3"
    first = open_wrapper(path)
    _commit_rows(first, 3)
    assert _wait_for_rows(path, tmp_path, 3) == 3
    first.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)

    second = open_wrapper(path)
    _commit_rows(second, COMMITS)

    assert _wait_for_rows(path, tmp_path, COMMITS) == COMMITS


def test_a_database_not_in_wal_mode_gets_no_thread(tmp_path: Path) -> None:
    handler = ConnectionHandler(
        {"default": {"ENGINE": "tasks.publish.db_backends.sqlite3", "NAME": str(tmp_path / "j.db")}}
    )
    wrapper = handler["default"]
    try:
        wrapper.ensure_connection()
        assert wrapper.checkpointer is None
    finally:
        handler.close_all()
