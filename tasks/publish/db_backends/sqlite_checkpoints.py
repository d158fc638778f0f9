"""SQLite WAL checkpoints in a background thread, off the committing caller's path.

In WAL mode SQLite copies the log back into the database file (a checkpoint, with an
fsync of both files) inside whichever COMMIT takes the log past `wal_autocheckpoint`
pages (1000 by default). A `.delay()` in a view's transaction adds a row and its
index entries, several pages, so about every hundredth view paid a checkpoint:
milliseconds at p99, and a large share of the row's average cost. SQLite's
documentation suggests exactly this for such applications:
raise the automatic checkpoint out of the way and run `wal_checkpoint(PASSIVE)` from
a thread of its own. A passive checkpoint takes no lock that readers or writers wait
for, and the sqlite3 module releases the GIL while it runs.

Each process keeps one `Checkpointer` per database file. Commits wake it (`notify()`
costs an Event.set); it waits `INTERVAL` for more pages to gather, checkpoints, and
also checkpoints once per `IDLE_INTERVAL` for writes committed outside `_commit`
(autocommit statements). The connections keep `FOREGROUND_AUTOCHECKPOINT` as a safety
net: should the thread fall behind or die, the log still cannot grow without bound.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)

INTERVAL = 0.1  # seconds between a commit and the checkpoint that follows it
IDLE_INTERVAL = 1.0  # seconds between checkpoints when no commit woke the thread
FOREGROUND_AUTOCHECKPOINT = 10_000  # pages (40 MB at 4 KiB) before a COMMIT checkpoints itself

_checkpointers: dict[str, Checkpointer] = {}
_registry_lock = threading.Lock()


def configure(connection: sqlite3.Connection) -> bool:
    """Move a new connection's automatic checkpoint out of the way if it is in WAL mode;
    return whether it is (otherwise there is nothing to checkpoint)."""
    (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
    if str(mode).lower() != "wal":
        return False
    connection.execute(f"PRAGMA wal_autocheckpoint={FOREGROUND_AUTOCHECKPOINT}")
    return True


def for_database(name: str) -> Checkpointer:
    """This process's checkpointer of the database file NAME (started on first use)."""
    path = os.path.abspath(name)
    checkpointer = _checkpointers.get(path)
    if checkpointer is None:
        with _registry_lock:
            checkpointer = _checkpointers.get(path)
            if checkpointer is None:
                checkpointer = _checkpointers[path] = Checkpointer(path)
    return checkpointer


class Checkpointer:
    """A daemon thread running passive checkpoints of one database file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._wake = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"sqlite-checkpoints:{Path(path).name}", daemon=True
        )
        self._thread.start()

    def notify(self) -> None:
        """A transaction committed: checkpoint soon."""
        self._wake.set()

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        inode: int | None = None
        while True:
            if self._wake.wait(IDLE_INTERVAL):
                time.sleep(INTERVAL)  # let the pages of more commits gather first
            self._wake.clear()
            try:
                current = os.stat(self.path).st_ino
            except FileNotFoundError:  # deleted (a test database being rebuilt)
                current = None
            if connection is not None and current != inode:
                connection.close()  # the file was replaced: checkpoint the new one
                connection = None
            if current is None:
                continue
            try:
                if connection is None:
                    # mode=rw: never create the file should it vanish in between.
                    # as_uri() percent-encodes the path (a "?" or "#" in it stays a name).
                    connection = sqlite3.connect(
                        f"{Path(self.path).as_uri()}?mode=rw",
                        uri=True,
                        isolation_level=None,
                        timeout=0,
                    )
                    inode = current
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as error:  # busy (another checkpoint) or gone: next round
                logger.debug("checkpoint of %s skipped: %s", self.path, error)
                if connection is not None:
                    connection.close()
                    connection = None


def _forget_after_fork() -> None:
    """A forked child has none of its parent's threads: it starts its own on first use."""
    global _registry_lock
    _checkpointers.clear()
    _registry_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
