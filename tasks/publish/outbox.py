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
  a long backoff). On Redis a message waiting for its ETA sits on a worker as
  "unacked", and kombu gives it to another worker every visibility timeout, so it
  would run several times (celery #2599, #3270, #4766). Held here, it is published
  TASKS_HOLD_LEAD seconds before its ETA and keeps the original ETA.
- A retry whose re-publish failed (broker down in the middle of a task). Celery would
  raise `Reject(requeue=False)` and the job would be gone.

`publish_due()` publishes what is due. It runs from beat every 10 s (the
`tasks.outbox.publish_due` task; one indexed query when there is nothing to do) and
once when a worker starts, so a broker outage heals as soon as a worker is back.

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
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from celery import current_app
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from kombu import Exchange, Queue
from kombu.exceptions import OperationalError

from tasks import conf
from tasks.backoff import Backoff, RetryPolicy
from tasks.conf import layer_settings
from tasks.models import JobStatus, OutboxMessage
from tasks.record.events import JobEvent

logger = logging.getLogger(__name__)

BATCH = 200  # messages claimed per query by the reconciler
MAX_BACKOFF = 3600  # seconds; a message that cannot be published at all waits this long

try:  # the transport's own errors, when it raises them unwrapped
    from redis.exceptions import ConnectionError as _RedisConnectionError
    from redis.exceptions import TimeoutError as _RedisTimeoutError

    _REDIS_ERRORS: tuple[type[BaseException], ...] = (_RedisConnectionError, _RedisTimeoutError)
except ImportError:  # pragma: no cover
    _REDIS_ERRORS = ()

#: What a publish raises when the broker is unreachable (kombu wraps most of them in
#: OperationalError; a few paths let the transport's or the socket's through).
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    ConnectionError,
    TimeoutError,
    socket.timeout,
    *_REDIS_ERRORS,
)

T = TypeVar("T")


# --- Policy (pure) ---------------------------------------------------------------------


def eta_of(options: Mapping[str, Any], now: datetime) -> datetime | None:
    """The absolute ETA that `countdown` or `eta` in apply_async options stand for."""
    eta = options.get("eta")
    if eta is not None:
        if isinstance(eta, str):
            eta = parse_datetime(eta)
        if isinstance(eta, datetime):
            return eta if timezone.is_aware(eta) else timezone.make_aware(eta, UTC)
        return None
    countdown = options.get("countdown")
    if countdown:
        return now + timedelta(seconds=float(countdown))
    return None


def hold_until(eta: datetime | None, now: datetime) -> datetime | None:
    """When to publish a job with this ETA, or None to publish it now."""
    if eta is None:
        return None
    config = settings_now()
    if (eta - now).total_seconds() <= config.hold_after:
        return None
    return eta - timedelta(seconds=config.hold_lead)


#: A message that failed for a reason other than the broker (a bad option, a missing
#: route) waits 2, 4, 8 ... seconds, at most an hour.
FAILED_PUBLISH_BACKOFF = RetryPolicy(Backoff.EXPONENTIAL, base=2.0, cap=MAX_BACKOFF, jitter=False)


def backoff(attempts: int) -> float:
    """Seconds before publishing again after `attempts` failed publishes."""
    return FAILED_PUBLISH_BACKOFF.ceiling(attempts - 1)


@dataclass(frozen=True, slots=True)
class Config:
    """The publishing settings (tasks.conf), kept per process in the shape the commit
    hook uses on every enqueue; reset when tests override them."""

    hold_after: float
    hold_lead: float
    lease: float
    retry_policy: Mapping[str, Any]


_config: Config | None = None


def settings_now() -> Config:
    global _config
    if _config is None:
        layer = layer_settings()
        _config = Config(
            hold_after=layer.hold_after,
            hold_lead=layer.hold_lead,
            lease=layer.outbox_lease,
            retry_policy=dict(layer.publish_retry_policy),
        )
    return _config


def _reset_config(setting: str = "", **_: Any) -> None:
    global _config
    if not setting or setting.startswith(conf.PREFIX):
        _config = None


# --- Messages ----------------------------------------------------------------------------


class _OptionsEncoder(DjangoJSONEncoder):
    """apply_async options as JSON: datetimes as ISO 8601, queues and exchanges by name,
    signatures (dicts already) as they are."""

    def default(self, o: Any) -> Any:
        if isinstance(o, (Queue, Exchange)):
            return o.name
        return super().default(o)


def encode_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Options as they will be stored, so the hook publishes exactly what a reconciler
    would. Raises TypeError for an option that JSON cannot hold."""
    decoded: dict[str, Any] = json.loads(json.dumps(dict(options), cls=_OptionsEncoder))
    return decoded


def decode_options(options: Mapping[str, Any]) -> dict[str, Any]:
    decoded = dict(options)
    for name in ("eta", "expires"):
        value = decoded.get(name)
        if isinstance(value, str):
            decoded[name] = parse_datetime(value) or value
    return decoded


@dataclass(slots=True)
class Entry:
    """One message to publish: what an OutboxMessage row holds, in memory."""

    task_id: str
    name: str
    args: list[Any]
    kwargs: dict[str, Any]
    options: dict[str, Any]
    claimed_at: datetime | None = None
    due_at: datetime = field(default_factory=timezone.now)

    @classmethod
    def from_row(cls, row: OutboxMessage) -> Entry:
        return cls(
            row.task_id, row.name, row.args, row.kwargs, row.options, row.claimed_at, row.due_at
        )

    def as_row(self, created_at: datetime) -> dict[str, Any]:
        """The row's columns (not attempts and last_error)."""
        return {
            "task_id": self.task_id,
            "name": self.name,
            "args": self.args,
            "kwargs": self.kwargs,
            "options": self.options,
            "due_at": self.due_at,
            "claimed_at": self.claimed_at,
            "created_at": created_at,
        }

    def insert(self, error: str = "") -> None:
        """Write the row (in the current transaction, if any).

        A retry reuses its job's task id, and the row of the job's first publish may
        still wait for its batched delete (`_Deletions`): the retry's row replaces it,
        with a claim of its own, so that delete no longer matches it.
        """
        row = self.as_row(timezone.now())
        OutboxMessage.objects.update_or_create(
            task_id=row.pop("task_id"),
            defaults={**row, "attempts": 1 if error else 0, "last_error": error[:2000]},
        )


def send(entry: Entry, app: Any = None, *, add_to_parent: bool = True) -> None:
    """Publish one message, giving up after the bounded retry policy."""
    app = app or current_app
    options = decode_options(entry.options)
    options.setdefault("retry", True)
    options.setdefault("retry_policy", settings_now().retry_policy)
    app.send_task(
        entry.name,
        entry.args,
        entry.kwargs,
        task_id=entry.task_id,
        add_to_parent=add_to_parent,
        **options,
    )


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
