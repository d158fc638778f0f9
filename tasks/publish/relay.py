"""The relay: publishes the jobs that `.delay()` wrote inside a transaction.

Inside `transaction.atomic()`, `.delay()` only writes the job's PENDING row, with the
caller's COMMIT (tasks.publish.with_commit). The row carries its message (`Job.message`:
the apply_async options) and `publish_due_at`, so it is the job's durable record and
its outbox message at once, and the request never touches the broker. A relay
publishes such rows after the commit:

- every worker runs one for as long as it runs (in its recorder process:
  tasks.runtime.worker_steps), for the queues that worker consumes, looking for due rows every
  TASKS_RELAY_POLL_INTERVAL seconds and without a pause while it finds some. The relays
  scale with the workers of each queue, and a job for a queue no worker consumes waits
  in the table (PENDING, where the dashboard shows it) instead of on the broker;
- the reconciler task that beat schedules every 10 s (tasks.outbox.publish_due, run by
  a worker's pool) makes a pass too: a backstop should a recorder process be down.

Jobs committed while no worker runs wait in the table, PENDING, until one starts.

Why not publish from the committing process, as Celery's `delay_on_commit` does? A
publish costs that process more CPU than the whole transaction around it, and a
publish there also needs a second write to say "done"
(the outbox row's delete). Here the request pays one INSERT that rides with its COMMIT;
the publish and its bookkeeping are paid by the worker's side, in batches.

Claims: a relay takes a batch of due rows in one short transaction and moves their
`publish_due_at` to the end of a lease (TASKS_OUTBOX_LEASE). On PostgreSQL the rows are
locked with `FOR UPDATE SKIP LOCKED`, so concurrent relays take disjoint batches; on
SQLite the database's single writer serialises the claims, and a relay whose read is
stale gets "database is locked" instead of a claim and tries again later. After
publishing, the relay clears `publish_due_at` of the rows it still holds. A relay that
dies mid-batch leaves the rest to whichever relay comes after the lease: a message may
then be published twice under the same task id (at least once, as everywhere with
`acks_late`; tasks should be idempotent). A row whose job moved on meanwhile (its
SENT was recorded after a relay died before clearing it, or an operator cancelled it)
is cleared without being published, unless the broker lost its message
(`recovered_at` set by tasks.runtime.broker_recovery): then it is published again from the
row, with the same task id (`recovery_entry`). A broker that does not answer ends the pass: the
rows not yet published are released and the relay waits longer before the next pass.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.db import DatabaseError, close_old_connections, connections, transaction
from django.utils import timezone

from tasks import correlation
from tasks.backoff import RetryPolicy
from tasks.conf import layer_settings
from tasks.models import Job, JobStatus
from tasks.publish import config, messages

logger = logging.getLogger(__name__)

BATCH = 200  # rows claimed per transaction
FAILED_PUBLISH_DELAY = 60.0  # seconds before a row the broker refused is tried again
MAX_IDLE_WAIT = 30.0  # seconds: the longest pause after the broker or database failed
_COLUMNS = ("task_id", "name", "args", "kwargs", "message", "status", "recovered_at")
#: What a recovered row's message is rebuilt from (read only for such rows).
_RECOVERY_COLUMNS = (
    *_COLUMNS,
    "attempts",
    "queue",
    "priority",
    "eta",
    "correlation_id",
    "parent_id",
    "root_id",
    "group_id",
    "group_index",
)
#: Rows the watcher marked after a broker loss (recovered_at set) in these states are
#: published again although they are no longer PENDING (tasks.runtime.broker_recovery).
RECOVERABLE = frozenset({JobStatus.SENT, JobStatus.RECEIVED, JobStatus.RETRY, JobStatus.STARTED})


@dataclass(frozen=True, slots=True)
class PassResult:
    """What one pass did: rows published, and whether the broker stopped it."""

    published: int
    broker_down: bool = False


def poll_interval() -> float:
    return layer_settings().relay_poll_interval


def publish_pending(
    limit: int = 10 * BATCH, app: Any = None, queues: Collection[str] | None = None
) -> int:
    """Publish due rows (of `queues`, or all) until none is left or `limit`; how many."""
    return relay_pass(limit, app, queues).published


def relay_pass(
    limit: int = 10 * BATCH, app: Any = None, queues: Collection[str] | None = None
) -> PassResult:
    """Claim and publish due rows, a batch at a time, until none is left or `limit`."""
    app = app or current_app
    published = 0
    while published < limit:
        claimed = _claim(min(BATCH, limit - published), queues)
        if claimed is None:
            break
        lease_end, rows = claimed
        done, broker_down = _publish(rows, lease_end, app)
        published += done
        if broker_down:
            return PassResult(published, broker_down=True)
        if len(rows) < BATCH:
            break
    return PassResult(published)


def _claim(
    size: int, queues: Collection[str] | None = None
) -> tuple[datetime, list[dict[str, Any]]] | None:
    """Take up to `size` due rows for one lease; None when nothing is due."""
    if queues is not None and not queues:
        return None
    now = timezone.now()
    if not _any_due(now):
        return None
    lease_end = now + timedelta(seconds=config.settings_now().lease)
    due = Job.objects.filter(publish_due_at__lte=now)
    if queues is not None:
        due = due.filter(queue__in=list(queues))
    with transaction.atomic():
        rows = list(
            due.order_by("publish_due_at")
            .select_for_update(skip_locked=True)
            .values(*_COLUMNS)[:size]
        )
        if not rows:
            return None
        Job.objects.filter(task_id__in=[row["task_id"] for row in rows]).claim_for_relay(lease_end)
    return lease_end, rows


def _any_due(now: datetime) -> bool:
    """Whether any row is due: what an idle relay asks every poll interval.

    Outside a transaction, so that it never takes SQLite's write lock (the layer's
    SQLite transactions BEGIN IMMEDIATE), and in plain SQL: the ORM's `exists()` spends
    most of its time building the query, which an idle relay would pay at every look.
    No filter on the queue and an ORDER BY the partial index gives, so that
    the index of the rows still to publish is the only sane plan whatever the table's
    statistics say: with a queue filter, PostgreSQL can plan a freshly filled table (its
    statistics still saying "empty") through the (queue, status) index and read every
    job of the queue at each look. A row due
    for a queue this relay does not serve only costs it an empty claim.
    """
    connection = connections[Job.objects.db]
    quote = connection.ops.quote_name
    sql = (
        f"SELECT 1 FROM {quote(Job._meta.db_table)} WHERE publish_due_at <= %s "  # noqa: S608
        "ORDER BY publish_due_at LIMIT 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [connection.ops.adapt_datetimefield_value(now)])
        return cursor.fetchone() is not None


def _publish(rows: Sequence[dict[str, Any]], lease_end: datetime, app: Any) -> tuple[int, bool]:
    """Publish claimed rows; (how many were published, whether the broker is down)."""
    finished: list[str] = []  # published, or no longer to be published
    published = 0
    recovered = _recovered_rows(rows)
    for index, row in enumerate(rows):
        task_id = row["task_id"]
        if row["status"] == JobStatus.PENDING:
            entry = messages.Entry(
                task_id,
                row["name"],
                row["args"] or [],
                row["kwargs"] or {},
                dict(row["message"] or {}),
            )
        elif task_id in recovered:
            entry = recovery_entry(recovered[task_id])
        else:
            finished.append(task_id)
            continue
        try:
            messages.send(entry, app, add_to_parent=False)
        except messages.CONNECTION_ERRORS as exc:
            logger.warning(
                "Broker unavailable; %s job(s) stay PENDING and are published when it answers: %s",
                len(rows) - index,
                exc,
            )
            _clear(finished, lease_end)
            _set_due([r["task_id"] for r in rows[index:]], lease_end, timezone.now())
            return published, True
        except Exception as exc:
            logger.exception(
                "Could not publish job %s (%s); trying again later", task_id, row["name"]
            )
            retry_at = timezone.now() + timedelta(seconds=FAILED_PUBLISH_DELAY)
            _set_due([task_id], lease_end, retry_at, error=f"Could not publish: {exc!r}")
            continue
        finished.append(task_id)
        published += 1
    _clear(finished, lease_end)
    return published, False


def _recovered_rows(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The claimed rows to publish again after a broker loss, with what their message is
    rebuilt from: one more query, only when a batch holds such rows."""
    ids = [
        row["task_id"]
        for row in rows
        if row["recovered_at"] is not None and row["status"] in RECOVERABLE
    ]
    if not ids:
        return {}
    return {
        row["task_id"]: row
        for row in Job.objects.filter(task_id__in=ids).values(*_RECOVERY_COLUMNS)
        if row["status"] in RECOVERABLE
    }


def recovery_entry(row: dict[str, Any]) -> messages.Entry:
    """The message of a job the broker lost, from its row: the stored options (a relayed
    job's), else what the row recorded of its message, with the retry count the job had
    reached so a retry carries on instead of starting over, and its ETA.

    A job published straight to the broker keeps no options row: its name, arguments,
    queue, priority, lineage, group and ETA are on the row; links, expiry and a chord's
    body are not (docs/broker-loss.md).
    """
    options: dict[str, Any] = {
        name: value
        for name, value in (row["message"] or {}).items()
        if name not in ("unique_key", "countdown", "retries")
    }
    if row["queue"]:
        options["queue"] = row["queue"]
    if row["priority"] is not None:
        options.setdefault("priority", row["priority"])
    headers = dict(options.get("headers") or {})
    if row["correlation_id"]:
        headers.setdefault(correlation.HEADER, row["correlation_id"])
    options["headers"] = headers
    for fact in ("parent_id", "root_id", "group_id"):
        if row[fact]:
            options.setdefault(fact, row[fact])
    if row["group_id"] and row["group_index"] is not None:
        options.setdefault("group_index", row["group_index"])
    # `attempts` is the attempt the row is at: a RETRY row's N is the retry's own
    # `retries` (its message said so); RECEIVED and STARTED are attempt retries + 1.
    attempts = int(row["attempts"] or 0)
    retries = attempts if row["status"] in (JobStatus.SENT, JobStatus.RETRY) else attempts - 1
    if retries > 0:
        options["retries"] = retries
    if row["eta"] is not None:
        options["eta"] = row["eta"]
    return messages.Entry(
        row["task_id"], row["name"], row["args"] or [], row["kwargs"] or {}, options
    )


def _clear(task_ids: list[str], lease_end: datetime) -> None:
    """Published: no longer due (only rows this relay still holds)."""
    if not task_ids:
        return
    try:
        Job.objects.filter(task_id__in=task_ids).published_by_relay(lease_end)
    except DatabaseError:
        # Published but still due: published again when the lease ends (at least once).
        logger.exception("Published %s job(s) but could not mark them published", len(task_ids))
        raise


def _set_due(task_ids: list[str], lease_end: datetime, due: datetime, error: str = "") -> None:
    """Give rows back (only those this relay still holds), due again at `due`."""
    try:
        Job.objects.filter(task_id__in=task_ids).due_again(lease_end, due, error)
    except DatabaseError:
        # The lease runs out by itself; a relay takes the rows then.
        logger.exception("Could not release %s relay claim(s)", len(task_ids))


class Relay:
    """The relay's loop: a pass, then a pause that depends on what the pass met."""

    def __init__(self, app: Any = None, queues: Collection[str] | None = None) -> None:
        self.app = app
        self.queues = None if queues is None else sorted(queues)
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self, should_stop: Callable[[], bool] = lambda: False) -> Relay:
        """Run the loop in a daemon thread of this process (until `stop()`)."""
        self.thread = threading.Thread(
            target=self.run, args=(should_stop,), name="job-relay", daemon=True
        )
        self.thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        failures = 0
        try:
            while not (self._stop.is_set() or should_stop()):
                try:
                    result = relay_pass(app=self.app, queues=self.queues)
                except DatabaseError as exc:
                    failures += 1
                    logger.warning("Relay: database unavailable (%s); retrying", exc)
                    connections.close_all()
                    wait = self._backoff(failures)
                except Exception:
                    failures += 1
                    logger.exception("Relay pass failed; retrying")
                    wait = self._backoff(failures)
                else:
                    failures = failures + 1 if result.broker_down else 0
                    if failures:
                        wait = self._backoff(failures)
                    elif result.published:
                        wait = 0.0  # more may be due
                    else:
                        wait = poll_interval()
                    close_old_connections()
                if wait:
                    self._stop.wait(wait)
        finally:
            connections.close_all()

    @staticmethod
    def _backoff(failures: int) -> float:
        """Twice the poll interval, doubling with each failure, at most MAX_IDLE_WAIT."""
        policy = RetryPolicy(base=2 * poll_interval(), cap=MAX_IDLE_WAIT, jitter=False)
        return policy.ceiling(failures - 1)
