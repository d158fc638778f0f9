"""`.delay()` inside a transaction: the job's row written with the caller's COMMIT.

The PENDING row must be part of the caller's transaction: a rollback removes it, a
commit makes it durable, and it is also the job's outbox message (`publish_due_at`),
which the relay publishes after the commit (tasks.publish.relay). Nothing touches the broker in
the caller's process. The simple way, an INSERT at `.delay()` time, costs a database
round trip per call on PostgreSQL. Instead `.delay()` registers a `DeferredEnqueue`
with `transaction.on_commit`, and the connection writes the rows of every such hook
still registered:

- just before the COMMIT, in the same transaction, all jobs of the transaction in one
  statement;
- or earlier, before the next statement the transaction runs, so the transaction reads
  its own jobs (`Job.objects.get(task_id=...)` right after `.delay()` finds the row).

Savepoints need nothing of their own: Django drops the on-commit hooks registered
inside a savepoint that rolls back, so their rows are never written (or, written
already, are rolled back with it). The hook itself does nothing once committed.

Only connections of the layer's backends (tasks.publish.db_backends) do this; on any other the
rows are written at `.delay()` time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tasks.record.events import JobEvent

# This module is imported by the database backends (tasks.publish.db_backends), before Django's
# apps are ready: models, outbox and recording are imported where they are used.

# Statements that must not trigger the write: Django's own savepoint bookkeeping.
_SAVEPOINT_SQL = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")


class DeferredEnqueue:
    """The on-commit hook of one `.delay()`: its row, written with the COMMIT.

    Registered with `on_commit` so that Django's savepoint bookkeeping decides which
    rows a commit keeps; once committed there is nothing left to do here (the relay
    publishes).
    """

    __slots__ = ("event", "written")

    def __init__(self, event: JobEvent) -> None:
        self.event = event
        self.written = False

    def __call__(self) -> None:
        pass


def supported(connection: Any) -> bool:
    return bool(getattr(connection, "defers_enqueue_writes", False))


def defer(connection: Any, hook: DeferredEnqueue) -> None:
    """Register the hook on the connection's current transaction."""
    connection.on_commit(hook, robust=True)
    connection.unwritten_enqueues += 1


def write_pending(connection: Any) -> None:
    """Write the rows of every registered hook not written yet (in the transaction)."""
    # Not at the top: the database backends import this module when Django opens its
    # first connection, which can be before the app registry (models) is ready.
    from tasks.publish import pending_rows

    if not connection.unwritten_enqueues:
        return
    connection.unwritten_enqueues = 0  # first: the statements below pass the wrapper
    hooks = [
        hook
        for _savepoints, hook, _robust in connection.run_on_commit
        if isinstance(hook, DeferredEnqueue) and not hook.written
    ]
    if not hooks:
        return
    for hook in hooks:
        hook.written = True
    pending_rows.write(connection, [hook.event for hook in hooks])


class DeferredEnqueueMixin:
    """For a Django DatabaseWrapper: write deferred enqueues before the next statement
    or with the COMMIT."""

    defers_enqueue_writes = True
    unwritten_enqueues = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Innermost of the wrappers (Django's execute_wrapper() appends after it).
        self.execute_wrappers.append(self._write_enqueues_first)  # type: ignore[attr-defined]

    def _write_enqueues_first(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        if self.unwritten_enqueues and not sql.lstrip().upper().startswith(_SAVEPOINT_SQL):
            write_pending(self)
        return execute(sql, params, many, context)

    def _commit(self) -> None:
        if self.unwritten_enqueues and self.connection is not None:  # type: ignore[attr-defined]
            write_pending(self)
        super()._commit()  # type: ignore[misc]

    def _rollback(self) -> None:
        self.unwritten_enqueues = 0  # Django drops the hooks with the transaction
        super()._rollback()  # type: ignore[misc]
