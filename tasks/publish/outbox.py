"""The outbox: messages published from the database when the broker cannot take them now.

Three kinds of job wait here as an `OutboxMessage` (everything `send_task` needs: name,
arguments, options with queue, priority, headers, absolute eta and expiry, retries).
A plain `.delay()` inside a transaction is not one of them: its job row is its own
outbox message, published by a worker's relay (tasks.publish.relay).

- `.delay()` of a `unique_key` task inside a transaction (or on a database backend that
  is not the layer's). The row is written in the caller's transaction, already claimed
  by its own commit hook, which publishes after commit and deletes the row. If the
  broker is down at commit, the hook logs and gives up quickly; the row stays and the
  job stays PENDING. Nothing is lost between commit and broker, and a process that dies
  right after commit loses nothing.
- Jobs whose ETA is further away than TASKS_HOLD_AFTER (a long countdown, a retry with
  a long backoff): tasks.publish.holds says when and why.
- A retry whose re-publish failed (broker down in the middle of a task). Celery would
  raise `Reject(requeue=False)` and the job would be gone.

`publish_due()` publishes what is due. It runs from beat every 10 s and once when a
worker starts (tasks.publish.reconciler; one indexed query when there is nothing to
do), so a broker outage heals as soon as a worker is back. Messages themselves, and
publishing one, are tasks.publish.messages, shared with the relay.

Claims are leases on `claimed_at`, taken with a conditional UPDATE (compare and set:
`WHERE pk = ... AND claimed_at IS NOT DISTINCT FROM <what I read>`), so of several
reconcilers (workers, beat) and the commit hook exactly one publishes a message. The
row written in a transaction counts as claimed at insert time by its hook. The hook's
publish is bounded (TASKS_PUBLISH_RETRY_POLICY, a connect timeout) far below the lease
(TASKS_OUTBOX_LEASE), so a reconciler waits for the lease to run out and only then
takes over a message whose hook died. A transaction that stayed open for a good part
of the lease before committing would leave its hook too little margin: then the hook
renews its claim with the same conditional UPDATE first, and publishes only if it
still held it. A publisher that dies after publishing but before deleting the row
leaves it to be published again when the lease ends: delivery is at least once (the
same task id; tasks should be idempotent), as everywhere with `acks_late`.

Clocks: leases compare timestamps written by different hosts, which assumes clocks
synchronised to well under the lease (NTP), as Celery's ETAs do already.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from celery import current_app
from django.db import connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from tasks.backoff import Backoff, RetryPolicy
from tasks.models import JobStatus, OutboxMessage
from tasks.publish.config import settings_now
from tasks.publish.messages import CONNECTION_ERRORS, Entry, send
from tasks.record.events import JobEvent

logger = logging.getLogger(__name__)

BATCH = 200  # messages claimed per query by the reconciler
MAX_BACKOFF = 3600  # seconds; a message that cannot be published at all waits this long

T = TypeVar("T")


#: A message that failed for a reason other than the broker (a bad option, a missing
#: route) waits 2, 4, 8 ... seconds, at most an hour.
FAILED_PUBLISH_BACKOFF = RetryPolicy(Backoff.EXPONENTIAL, base=2.0, cap=MAX_BACKOFF, jitter=False)


def backoff(attempts: int) -> float:
    """Seconds before publishing again after `attempts` failed publishes."""
    return FAILED_PUBLISH_BACKOFF.ceiling(attempts - 1)


def held_retry_event(task_id: str, name: str, retries: int, eta: datetime | None) -> JobEvent:
    """A retry kept in the outbox (held for its ETA, or its re-publish failed): RETRY,
    as the re-publish would have recorded it."""
    return JobEvent(
        task_id=task_id,
        status=JobStatus.RETRY,
        attempt=retries,
        facts={"name": name},
        state={"eta": eta} if eta is not None else {},
    )


# --- Publishing ----------------------------------------------------------------------------


def publish_claimed(entry: Entry, app: Any = None, *, raise_errors: bool = False) -> bool:
    """The commit hook: publish a message this process inserted already claimed.

    True when published (and the row deleted). With `raise_errors`, a broker error
    propagates after the claim is released (for `.delay()` outside a transaction,
    which must tell its caller); otherwise it is logged and the reconciler retries.
    """
    config = settings_now()
    claim = entry.claimed_at
    now = timezone.now()
    if claim is None or (now - claim).total_seconds() > config.lease / 2:
        # The caller's transaction stayed open long: renew the claim first, so a
        # reconciler that saw the lease run out cannot publish it at the same time.
        renewed = now
        if not _compare_and_set(entry.task_id, claim, renewed):
            return False
        claim = renewed
    try:
        send(entry, app)
    except CONNECTION_ERRORS as exc:
        _release(entry.task_id, claim, exc, retry_at=None)
        if raise_errors:
            raise
        logger.warning(
            "Broker unavailable after commit; job %s (%s) stays PENDING in the outbox "
            "and is published when the broker answers: %s",
            entry.task_id,
            entry.name,
            exc,
        )
        return False
    except Exception as exc:
        _release(entry.task_id, claim, exc, retry_at=timezone.now())
        if raise_errors:
            raise
        logger.exception("Could not publish job %s (%s) after commit", entry.task_id, entry.name)
        return False
    _deletions.add(entry.task_id, claim)
    return True


def commit_hook(entry: Entry, app: Any = None) -> Callable[[], None]:
    """What `.delay()` in a transaction registers with `transaction.on_commit`.

    It never raises into the request that committed: a broker error leaves the job
    PENDING in the outbox (logged), anything else is logged too.
    """

    def publish_after_commit() -> None:
        try:
            publish_claimed(entry, app)
        except Exception:
            logger.exception(
                "Publishing job %s (%s) after commit failed; it stays in the outbox",
                entry.task_id,
                entry.name,
            )

    return publish_after_commit


def publish_due(limit: int = 10 * BATCH, app: Any = None) -> int:
    """Publish outbox messages that are due and not claimed; returns how many.

    Stops at the first broker error (the broker is down: the next run tries again).
    Cheap when there is nothing to do: one query on the `due_at` index.
    """
    app = app or current_app
    config = settings_now()
    published = 0
    while published < limit:
        now = timezone.now()
        rows = list(
            OutboxMessage.objects.filter(due_at__lte=now)
            .filter(
                Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - timedelta(seconds=config.lease))
            )
            .order_by("due_at")[: min(BATCH, limit - published)]
        )
        if not rows:
            break
        for row in rows:
            claim = timezone.now()
            if not _compare_and_set(row.task_id, row.claimed_at, claim):
                continue  # another publisher has it
            entry = Entry.from_row(row)
            try:
                send(entry, app, add_to_parent=False)
            except CONNECTION_ERRORS as exc:
                _release(row.task_id, claim, exc, retry_at=None)
                logger.warning(
                    "Broker unavailable; %s outbox message(s) published in this run, the "
                    "rest wait for the next: %s",
                    published,
                    exc,
                )
                return published
            except Exception as exc:
                attempts = row.attempts + 1
                _release(
                    row.task_id,
                    claim,
                    exc,
                    retry_at=timezone.now() + timedelta(seconds=backoff(attempts)),
                )
                logger.exception(
                    "Could not publish outbox message %s (%s), attempt %s; trying again later",
                    row.task_id,
                    row.name,
                    attempts,
                )
                continue
            _delete(row.task_id, claim)
            published += 1
        if len(rows) < BATCH:
            break
    if published:
        logger.info("Published %s message(s) from the outbox", published)
    return published


def _compare_and_set(task_id: str, expected: datetime | None, claim: datetime) -> bool:
    """Take the lease if nobody changed it since it was read (one conditional UPDATE)."""
    rows = OutboxMessage.objects.filter(task_id=task_id)
    rows = (
        rows.filter(claimed_at__isnull=True)
        if expected is None
        else rows.filter(claimed_at=expected)
    )
    return rows.update(claimed_at=claim) == 1


def _release(task_id: str, claim: datetime, exc: BaseException, retry_at: datetime | None) -> None:
    """Give the lease back after a failed publish (only if it is still ours)."""

    changes: dict[str, Any] = {
        "claimed_at": None,
        "attempts": F("attempts") + 1,
        "last_error": f"{type(exc).__name__}: {exc}"[:2000],
    }
    if retry_at is not None:
        changes["due_at"] = retry_at
    try:
        OutboxMessage.objects.filter(task_id=task_id, claimed_at=claim).update(**changes)
    except Exception:
        # The lease runs out by itself; a reconciler takes the message then.
        logger.exception("Could not release the outbox claim on %s", task_id)


def _delete(task_id: str, claim: datetime) -> None:
    try:
        OutboxMessage.objects.filter(task_id=task_id, claimed_at=claim).delete()
    except Exception:
        # Published but still in the outbox: published again when the lease ends.
        logger.exception("Published job %s but could not delete its outbox row", task_id)


class _Deletions:
    """Outbox rows of published messages, deleted in batches from a thread.

    A DELETE and its COMMIT per `.delay()` in a transaction cost more than the publish
    itself; one DELETE per batch every DELETE_INTERVAL costs almost nothing. Delivery
    stays at least once, as with a publisher that dies between publish and delete: a
    row whose delete was lost with its process is published again when its lease ends
    (same task id). Each delete matches the row's claim, so a row claimed again since
    (a reconciler after the lease, a retry's own row) is left alone.
    """

    DELETE_INTERVAL = 0.1  # seconds a published message's row may outlive its publish
    IDLE_CLOSE = 5.0  # seconds without a row before the thread closes its connection
    BATCH = 200

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _pending, held only to move rows
        self._flushing = threading.Lock()  # held while a batch is being deleted
        self._pending: list[tuple[str, datetime]] = []
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def add(self, task_id: str, claim: datetime) -> None:
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent deletes its own
                self._pending, self._thread, self._pid = [], None, os.getpid()
                atexit.register(self.flush)
            self._pending.append((task_id, claim))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="outbox-deletions", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def flush(self) -> None:
        """Delete every pending row now, in the calling thread (after any batch another
        thread is deleting: when this returns, every row published so far is gone)."""
        with self._flushing:
            while True:
                with self._lock:
                    batch = self._pending[: self.BATCH]
                    self._pending = self._pending[self.BATCH :]
                if not batch:
                    return
                self._delete(batch)

    @staticmethod
    def _delete(batch: list[tuple[str, datetime]]) -> None:
        try:
            _delete_claimed(batch)
        except Exception:
            # Published but still in the outbox: published again when the lease ends.
            logger.exception("Could not delete %s published outbox row(s)", len(batch))
            # The connection may be what failed (a database restart): the next batch
            # opens a new one.
            connections[OutboxMessage.objects.db].close()

    def _run(self) -> None:
        """Delete a batch every DELETE_INTERVAL while there are any, on one connection.

        The connection is kept while rows keep coming and closed after IDLE_CLOSE
        without any: a new connection per batch (ten a second under load) cost the
        producer a connect and PostgreSQL a new backend process each time.
        """
        while True:
            if not self._wake.wait(timeout=self.IDLE_CLOSE):
                connections.close_all()
                self._wake.wait()
            time.sleep(self.DELETE_INTERVAL)
            self._wake.clear()
            self.flush()


_deletions = _Deletions()


def _delete_claimed(rows: list[tuple[str, datetime]]) -> None:
    """Delete many (task id, claim) pairs: on PostgreSQL one statement whose one
    parameter is a JSON document of the pairs, elsewhere one prepared DELETE run for
    each pair, in one transaction.

    Plain SQL: the ORM built and compiled a query with one OR branch per row, which
    cost more CPU than the rest of the batched path together (profiled on SQLite);
    psycopg's executemany binds and runs the statement once per row.
    """
    connection = connections[OutboxMessage.objects.db]
    quote = connection.ops.quote_name
    table = quote(OutboxMessage._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            pairs = json.dumps(
                [{"task_id": task_id, "claimed_at": claim.isoformat()} for task_id, claim in rows]
            )
            cursor.execute(
                f"DELETE FROM {table} AS o "  # noqa: S608 (identifiers from model metadata)
                f"USING json_populate_recordset(NULL::{table}, %s::json) AS d "
                "WHERE o.task_id = d.task_id AND o.claimed_at = d.claimed_at",
                [pairs],
            )
            return
        sql = f"DELETE FROM {table} WHERE task_id = %s AND claimed_at = %s"  # noqa: S608
        adapt = connection.ops.adapt_datetimefield_value
        with transaction.atomic(using=connection.alias):
            cursor.executemany(sql, [(task_id, adapt(claim)) for task_id, claim in rows])


def flush_deletions() -> None:
    """Delete now the rows of messages this process published (tests, shutdown)."""
    _deletions.flush()


def outside_transaction(fn: Callable[[], T]) -> T:
    """Run `fn` in autocommit, never inside the caller's transaction.

    A retry's re-publish happens inside the failing task's body, possibly inside an
    atomic block that the Retry exception is about to roll back; what is written to
    keep the retry must survive that. A separate thread has its own connection.
    (On SQLite, a writer holding the database lock in the calling thread would block
    it: retry outside `atomic` there.)
    """
    if not transaction.get_connection().in_atomic_block:
        return fn()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # handed to the calling thread
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name="outbox-write", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# --- Wiring ----------------------------------------------------------------------------------
