"""Django's SQLite backend; `.delay()`'s rows are written just before the COMMIT, and WAL
checkpoints run in a thread of their own (tasks.publish.db_backends.sqlite_checkpoints)."""

from __future__ import annotations

from typing import Any

from django.db.backends.sqlite3 import base

from tasks.publish.db_backends import sqlite_checkpoints
from tasks.publish.with_commit import DeferredEnqueueMixin


class DatabaseWrapper(DeferredEnqueueMixin, base.DatabaseWrapper):
    checkpointer: sqlite_checkpoints.Checkpointer | None = None

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = super().get_new_connection(conn_params)
        if not self.is_in_memory_db() and sqlite_checkpoints.configure(connection):
            self.checkpointer = sqlite_checkpoints.for_database(str(self.settings_dict["NAME"]))
        return connection

    def _commit(self) -> None:
        super()._commit()
        if self.checkpointer is not None:
            self.checkpointer.notify()
