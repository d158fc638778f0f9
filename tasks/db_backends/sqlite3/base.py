"""Django's SQLite backend; `.delay()`'s rows are written just before the COMMIT."""

from __future__ import annotations

from django.db.backends.sqlite3 import base

from tasks.deferred_enqueue import DeferredEnqueueMixin


class DatabaseWrapper(DeferredEnqueueMixin, base.DatabaseWrapper):
    pass
