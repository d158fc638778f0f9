"""Django's PostgreSQL backend; `.delay()`'s rows are written just before the COMMIT.

Not in psycopg's pipeline mode with the COMMIT, as they once were: the pipeline saved a
round trip on the wire (about 50 µs here) but cost more in psycopg's Python (bench
producer, 3,000 view transactions, four interleaved rounds: 350-467 µs of CPU per
transaction without the pipeline, 427-540 with it, and a higher rate in three rounds
of four).
"""

from __future__ import annotations

from django.db.backends.postgresql import base

from tasks.deferred_enqueue import DeferredEnqueueMixin


class DatabaseWrapper(DeferredEnqueueMixin, base.DatabaseWrapper):
    pass
