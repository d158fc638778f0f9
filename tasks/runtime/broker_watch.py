"""Noticing that the broker lost its data, and marking what it lost to be published again.

A thread of the process beside every worker (tasks.runtime.recorder_and_relay) reads the
broker's marker (tasks.broker.loss) every TASKS_BROKER_WATCH_INTERVAL seconds (a layer
setting, tasks.conf): one GET, nothing on a job's path. A marker this process had seen
and that is now missing is the evidence: the broker restarted without persistence,
failed over to an empty replica, or was flushed. A new run_id alone is not (a restart
with AOF changes it and loses nothing).

Then exactly one process recovers: the one whose SET NX writes the new marker. It writes
the BrokerLoss row first, marks the lost jobs (JobQuerySet.republish_after_broker_loss:
due for the relay now, recovered_at, recoveries + 1, recovered_because), and sets the
row's finished_at last. Should it die mid-way, any watcher finds the unfinished row once
it is older than STALLED_AFTER and completes it: the marking skips rows already marked
for this loss, so completing twice marks nothing twice. A Redis lock (the lease) keeps
two completions from running at once.

What is lost: jobs recorded as published and not started (SENT, RECEIVED, RETRY with its
ETA) before the loss was found, jobs the relay published whose SENT event died with the
broker's event stream (PENDING, their options stored, no longer due), and jobs recorded
as running (STARTED) on a worker that is lost by its heartbeats (their unacknowledged
entry vanished with the data, so no visibility timeout will give them back); minus every
task id the broker still holds (queues and the unacknowledged hash of the new dataset,
read once), minus jobs whose message waits in the layer's own outbox, minus what the
live workers say they are running (remote control: a job that started just before the
loss may not show STARTED on its row yet). A running job on a live worker keeps running.
The relay (tasks.publish.relay) publishes the marked rows from the row, same task id.

Rows recorded after the first scan (the sinks replay the events they flushed in the last
seconds into the new stream, tasks.record.sinks: the SENT of a plain `.delay()` whose
row was not written yet) are marked by the follow-up's re-scan while the loss is younger
than RESCAN_WINDOW. A STARTED job whose worker is not yet known to be lost when the loss
is found is looked at again while the loss is recent (LOST_WORKER_WINDOW): once its
worker's heartbeats have stopped long enough, it is marked too.

Losses the watcher cannot see: one that happens while no worker runs and before any
watcher has read the marker (a process that finds no marker at its first look writes one
and recovers nothing: nobody knows there was a marker).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

import redis
from celery import current_app
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from tasks.broker import broker_url, kind, redis_lists
from tasks.broker import loss as broker_loss
from tasks.conf import layer_settings
from tasks.models import BrokerLoss, Job, JobStatus, OutboxMessage, WorkerBeat
from tasks.runtime import heartbeat

logger = logging.getLogger(__name__)

#: How long after a loss its candidates are looked for again at each follow-up: rows
#: recorded after the first scan (SENT events the sinks replayed into the new stream,
#: tasks.record.sinks) are marked then.
RESCAN_WINDOW = timedelta(minutes=2)
#: An unfinished BrokerLoss row older than this is completed by another process.
STALLED_AFTER = timedelta(seconds=60)
#: How long after a loss STARTED jobs of workers found lost later are still recovered.
LOST_WORKER_WINDOW = timedelta(minutes=30)
#: Seconds a remote-control inspect waits for replies; the live workers are asked until
#: each online worker said what it runs, for at most the heartbeat window (after which a
#: worker that died with the broker is lost) plus INSPECT_PATIENCE seconds.
INSPECT_TIMEOUT = 1.0
INSPECT_PATIENCE = 5.0
#: Rows marked per statement.
MARK_CHUNK = 500
_LOCK_KEY = "tasks:broker-recovery:{}"
_NOT_STARTED = (JobStatus.SENT, JobStatus.RECEIVED, JobStatus.RETRY)
_FINISHED = (JobStatus.SUCCESS, JobStatus.FAILURE, JobStatus.REVOKED)
_REDIS_ERRORS = (redis.RedisError, OSError)


def check_interval() -> float:
    """Seconds between two looks at the marker (TASKS_BROKER_WATCH_INTERVAL; 0: off)."""
    return layer_settings().broker_watch_interval


def follow_up_interval() -> float:
    """Seconds between two looks for unfinished or recent losses (a database query)."""
    return layer_settings().broker_watch_follow_up


def enabled() -> bool:
    return check_interval() > 0 and kind() == "redis"


def because(address: str, restarted_at: datetime | None) -> str:
    if restarted_at is None:
        return f"broker {address} lost its data"
    local = timezone.localtime(restarted_at)
    return f"broker {address} lost its data (restarted {local:%H:%M:%S})"


class BrokerWatch:
    """The watch loop, in a daemon thread of the recorder process."""

    def __init__(self, hostname: str = "", url: str | None = None) -> None:
        self.url = url or broker_url()
        self.hostname = hostname or f"{socket.gethostname()}:{os.getpid()}"
        self.seen: broker_loss.Marker | None = None
        self.seen_at: datetime | None = None
        self.run_id = ""
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None
        self._next_follow_up = 0.0

    def start(self, should_stop: Callable[[], bool] = lambda: False) -> BrokerWatch:
        self.thread = threading.Thread(
            target=self.run, args=(should_stop,), name="broker-watch", daemon=True
        )
        self.thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        while not (self._stop.is_set() or should_stop()):
            try:
                self.check()
                if time.monotonic() >= self._next_follow_up:
                    self._next_follow_up = time.monotonic() + follow_up_interval()
                    follow_up(self.url, self.hostname)
            except _REDIS_ERRORS as exc:
                logger.debug("Broker watch: broker unreachable (%s)", exc)
            except DatabaseError as exc:
                logger.warning("Broker watch: database unavailable (%s)", exc)
            except Exception:
                logger.exception("Broker watch failed; looking again")
            finally:
                close_old_connections()
            self._stop.wait(check_interval())

    def check(self) -> BrokerLoss | None:
        """One look at the marker; the loss recovered when this process found it."""
        found = broker_loss.read_marker(self.url)
        now = timezone.now()
        if found is not None:
            if self.seen is None or found.token != self.seen.token:
                self.seen = found
                self.run_id = _server(self.url)[0]  # which server holds it (rare)
            self.seen_at = now
            return None
        marker = broker_loss.Marker.new()
        won = broker_loss.claim_marker(self.url, marker)
        previous, previous_at, previous_run_id = self.seen, self.seen_at, self.run_id
        if won:
            self.seen, self.seen_at = marker, now
            self.run_id = _server(self.url)[0]
        if previous is None:
            if won:
                logger.info("Broker watch: no marker on %s yet; wrote one", self._address())
            return None  # never seen one: no evidence that anything was lost
        if not won:
            return None  # another process found it first and recovers
        return self.recover(previous, previous_at, previous_run_id, now)

    def _address(self) -> str:
        return broker_loss.address(self.url)

    def recover(
        self,
        previous: broker_loss.Marker,
        seen_at: datetime | None,
        run_id: str,
        now: datetime,
    ) -> BrokerLoss:
        new_run_id, started = _server(self.url)
        # Restarted: another run_id, started (to the second) since the marker was last
        # seen. The same run_id: flushed. Another run_id started long before: a failover
        # to a replica that was already up.
        restarted = (
            started is not None
            and new_run_id != run_id
            and (seen_at is None or started >= seen_at - timedelta(seconds=1))
        )
        restarted_at = started if restarted else None
        address = self._address()
        evidence = (
            f"The marker {previous.token} the layer wrote into the broker"
            f"{f' at {previous.written_at:%Y-%m-%d %H:%M:%S}' if previous.written_at else ''}"
            f" was there at {seen_at:%H:%M:%S} and missing at {now:%H:%M:%S}"
            if seen_at
            else f"The marker {previous.token} the layer wrote into the broker is missing"
        )
        if restarted_at is not None:
            evidence += f"; the broker restarted at {restarted_at:%Y-%m-%d %H:%M:%S} UTC"
        else:
            evidence += "; the broker did not restart (flushed, or failed over to a replica)"
        loss = BrokerLoss.objects.create(
            detected_at=now,
            detected_by=self.hostname[:255],
            broker=address[:255],
            evidence=evidence + ".",
            restarted_at=restarted_at,
        )
        logger.warning("Broker %s lost its data: %s", address, evidence)
        client = redis_lists.client(self.url)
        lock = _LOCK_KEY.format(loss.pk)
        client.set(lock, self.hostname, ex=int(STALLED_AFTER.total_seconds()))
        complete(loss, self.url)
        _release(client, lock, self.hostname)
        return loss


def _server(url: str) -> tuple[str, datetime | None]:
    try:
        return broker_loss.server(url)
    except _REDIS_ERRORS:
        return "", None


def lost_hostnames(now: datetime) -> set[str]:
    """Workers whose heartbeats stopped without a clean shutdown."""
    return set(
        WorkerBeat.objects.filter(
            last_seen_at__lt=now - heartbeat.online_within(), stopped_at__isnull=True
        ).values_list("hostname", flat=True)
    )


def candidates(loss: BrokerLoss, now: datetime, running_only: bool = False) -> set[str]:
    """Jobs recorded as published before the loss was found, not finished, not already
    marked for this loss, none of them waiting in the outbox or for the relay; with
    `running_only`, only the running jobs of lost workers."""
    before = loss.detected_at
    not_marked = Job.objects.filter(publish_due_at__isnull=True).exclude(recovered_at__gte=before)
    waiting: set[str] = set()
    if not running_only:
        waiting.update(
            not_marked.filter(status__in=_NOT_STARTED, sent_at__lt=before).values_list(
                "task_id", flat=True
            )
        )
        # Published by the relay (its options stored, no longer due) whose SENT event
        # died with the broker's event stream: PENDING on record, lost with the broker.
        waiting.update(
            not_marked.filter(
                status=JobStatus.PENDING, message__isnull=False, created_at__lt=before
            ).values_list("task_id", flat=True)
        )
    lost = lost_hostnames(now)
    if lost:
        waiting.update(
            not_marked.filter(
                status=JobStatus.STARTED, worker__in=sorted(lost), started_at__lt=before
            ).values_list("task_id", flat=True)
        )
    if waiting:
        waiting -= _in_outbox(waiting)
    return waiting


def _in_outbox(task_ids: Iterable[str]) -> set[str]:
    ids = sorted(task_ids)
    found: set[str] = set()
    for start in range(0, len(ids), MARK_CHUNK):
        chunk = ids[start : start + MARK_CHUNK]
        found.update(
            OutboxMessage.objects.filter(task_id__in=chunk).values_list("task_id", flat=True)
        )
    return found


def running_on_live_workers() -> set[str]:
    """The task ids the live workers are running, asked of them (remote control).

    A job that started shortly before the loss may still be SENT or RECEIVED on its row
    (its STARTED not recorded yet, or lost with the stream's tail), and a worker that
    lives keeps running it: it must not run a second time. The worker dropped only what
    it held without running (its prefetch and ETA jobs, Celery's `on_close`). Workers
    reconnect to the restarted broker within seconds: ask until every worker online by
    its heartbeat has answered, for up to the heartbeat window plus INSPECT_PATIENCE.
    """
    running: set[str] = set()
    answered: set[str] = set()
    missing: set[str] = set()
    # Long enough for a worker that died with the broker to leave the online ones.
    patience = heartbeat.online_within().total_seconds() + INSPECT_PATIENCE
    deadline = time.monotonic() + patience
    while True:
        # Asked again each round: a worker killed with the broker drops out once its
        # heartbeat window has passed (it is lost, and its running jobs are recovered).
        expected = {beat.hostname for beat in heartbeat.online(timezone.now())}
        if not expected:
            break  # nobody online: nobody runs anything
        try:
            replies = current_app.control.inspect(timeout=INSPECT_TIMEOUT).active() or {}
        except Exception as exc:  # the broker may be reconnecting still
            logger.debug("Broker watch: inspect failed (%s)", exc)
            replies = {}
            time.sleep(INSPECT_TIMEOUT)
        for hostname, active in replies.items():
            answered.add(hostname)
            running.update(str(job.get("id")) for job in active or () if job.get("id"))
        missing = expected - answered
        if not missing or time.monotonic() >= deadline:
            break
    if missing:
        logger.warning(
            "Broker watch: worker(s) %s did not say what they run; a job they started just "
            "before the loss may run twice",
            ", ".join(sorted(missing)),
        )
    return running


def complete(
    loss: BrokerLoss, url: str, running_only: bool = False, late: bool = False
) -> BrokerLoss:
    """Mark what the broker lost to be published again; idempotent for one loss.

    `running_only` (a finished loss looked at again): only the running jobs of workers
    found lost since, and `still_held` stays as the first count said. `late` (a recent
    finished loss looked at again): every candidate recorded since the first scan (rows
    written from replayed events), the live workers asked only when there is one."""
    if late:
        lost = candidates(loss, timezone.now())
        if lost:
            lost -= running_on_live_workers()
    else:
        # First what the live workers run: waiting for their answers also lets a worker
        # killed together with the broker become lost, so its running jobs are candidates.
        running = set() if running_only else running_on_live_workers()
        lost = candidates(loss, timezone.now(), running_only) - running
    held = broker_loss.held_task_ids(url) if lost else set()
    still_held = lost & held
    to_mark = sorted(lost - held)
    text = because(loss.broker, loss.restarted_at)
    marked = 0
    if not (running_only or late):
        loss.still_held = len(still_held)
    for start in range(0, len(to_mark), MARK_CHUNK):
        chunk = to_mark[start : start + MARK_CHUNK]
        done = (
            Job.objects.filter(task_id__in=chunk, publish_due_at__isnull=True)
            .exclude(recovered_at__gte=loss.detected_at)
            .exclude(status__in=_FINISHED)
            .republish_after_broker_loss(timezone.now(), text)
        )
        marked += done
        loss.republished += done  # saved per chunk: a process that dies loses no count
        loss.save(update_fields=["still_held", "republished"])
    if loss.finished_at is None:
        loss.finished_at = timezone.now()
    loss.save(update_fields=["still_held", "republished", "finished_at"])
    if marked or still_held:
        logger.warning(
            "Broker %s lost its data: %s job(s) marked to publish again, %s still held by "
            "the broker (not published twice)",
            loss.broker,
            marked,
            len(still_held),
        )
    return loss


def follow_up(url: str, hostname: str) -> None:
    """Complete a loss whose recovering process died; for a loss younger than
    RESCAN_WINDOW, mark what was recorded since the first scan (events the sinks replayed
    into the new stream); while a loss is recent (LOST_WORKER_WINDOW), recover the
    running jobs of workers found lost since. One small query when nothing is recent."""
    now = timezone.now()
    recent = list(
        BrokerLoss.objects.filter(detected_at__gte=now - LOST_WORKER_WINDOW).order_by("detected_at")
    )
    if not recent:
        return
    client = redis_lists.client(url)
    for loss in recent:
        if loss.finished_at is None and now - loss.detected_at < STALLED_AFTER:
            continue  # its process is still at it
        lock = _LOCK_KEY.format(loss.pk)
        lease = int(STALLED_AFTER.total_seconds())
        if not client.set(lock, hostname, nx=True, ex=lease):
            continue
        try:
            if loss.finished_at is None:
                logger.warning(
                    "Completing the recovery of broker loss %s (its process stopped)", loss
                )
                complete(loss, url)
            else:
                rescan = now - loss.detected_at < RESCAN_WINDOW
                complete(loss, url, running_only=not rescan, late=rescan)
        finally:
            _release(client, lock, hostname)


def _release(client: redis.Redis, lock: str, hostname: str) -> None:
    """Give the lease back if still ours (the next follow-up, anywhere, may look again)."""
    try:
        held = client.get(lock)
        if isinstance(held, bytes):
            held = held.decode(errors="replace")
        if held == hostname:
            client.delete(lock)
    except _REDIS_ERRORS:
        pass  # it expires
