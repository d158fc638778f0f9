"""Django's PostgreSQL backend; `.delay()`'s rows travel with the COMMIT (pipeline mode)."""

from __future__ import annotations

from django.db.backends.postgresql import base

from tasks.deferred_enqueue import DeferredEnqueueMixin, write_pending


class DatabaseWrapper(DeferredEnqueueMixin, base.DatabaseWrapper):
    def _write_with_commit(self) -> None:
        """The job rows and COMMIT in one network round trip.

        In psycopg's pipeline mode the statements are sent without waiting for each
        reply; `commit()` sends COMMIT and waits for all of them. An INSERT that fails
        fails the COMMIT, and Django's `atomic` rolls the whole transaction back.
        """
        with self.wrap_database_errors, self.connection.pipeline():
            write_pending(self)
            self.connection.commit()
