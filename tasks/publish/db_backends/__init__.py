"""Database backends that write `.delay()`'s rows together with the caller's COMMIT.

Set `DATABASES["default"]["ENGINE"]` to `tasks.publish.db_backends.postgresql` or
`tasks.publish.db_backends.sqlite3` (project/settings.py does it for DATABASE_URL). They are
Django's own backends plus `tasks.publish.with_commit.DeferredEnqueueMixin`; with any
other ENGINE the layer writes the rows at `.delay()` time instead (same guarantees,
one more round trip per call).
"""
