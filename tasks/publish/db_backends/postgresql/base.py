"""Django's PostgreSQL backend; `.delay()`'s rows are written just before the COMMIT.

Not in psycopg's pipeline mode with the COMMIT: the pipeline saves a round trip on the
wire but costs more CPU in psycopg's Python than it saves, so a view's transaction is
slower with it.
"""

from __future__ import annotations

from django.db.backends.postgresql import base

from tasks.publish.with_commit import DeferredEnqueueMixin


class DatabaseWrapper(DeferredEnqueueMixin, base.DatabaseWrapper):
    pass
