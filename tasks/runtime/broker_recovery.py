"""What the broker lost, marked for the relay to publish again (once per loss).

Found by tasks.runtime.broker_watch; two kinds of evidence:

- The data is gone (the marker is missing: a restart without persistence, a failover to
  an empty replica, a flush): `complete` marks jobs recorded as published and not
  started (SENT, RECEIVED, RETRY with its ETA) before the loss was found, jobs the relay
  published whose SENT event died with the broker's event stream (PENDING, their
  options stored, no longer due), and jobs recorded as running (STARTED) on a worker
  that is lost by its heartbeats (their unacknowledged entry vanished with the data, so
  no visibility timeout will give them back); minus every task id the broker still
  holds (queues and the unacknowledged hash of the new dataset, read once), minus jobs
  whose message waits in the layer's own outbox, minus what the live workers say they
  are running (remote control: a job that started just before the loss may not show
  STARTED on its row yet). A running job on a live worker keeps running.
- The broker restarted with its data (the marker survived, the run_id changed: AOF,
  RDB, a replica promoted) yet may miss its last writes (`appendfsync everysec` loses
  up to a second or two of them; a replica lags): `missing_after_restart` looks twice
  for recent jobs it no longer holds and whose rows are not behind, and
  `complete_restart` marks those. A restart that lost nothing leaves no trace but a log
  line.

The relay (tasks.publish.relay) publishes the marked rows from the row, same task id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta

from celery import current_app
from django.utils import timezone

from tasks.broker import loss as broker_loss
from tasks.models import BrokerLoss, Job, JobStatus, OutboxMessage, WorkerBeat
from tasks.record.unrecorded import unrecorded_task_ids
from tasks.runtime import heartbeat

logger = logging.getLogger(__name__)

#: Seconds a remote-control inspect waits for replies; the live workers are asked until
#: each online worker said what it runs, for at most the heartbeat window (after which a
#: worker that died with the broker is lost) plus INSPECT_PATIENCE seconds.
INSPECT_TIMEOUT = 1.0
INSPECT_PATIENCE = 5.0
#: Seconds between the two looks for what a restarted broker no longer holds: a message
#: in a worker's hands between the queue and the unacknowledged hash (kombu's BRPOP,
#: then HSET) is in neither for an instant, never for this long.
VERIFY_AFTER = 10.0
#: How far back a restart that kept the data is looked into: the writes it can lose are
#: its last seconds (a replica's lag, an AOF's unsynced tail).
RESTART_LOOKBACK = timedelta(minutes=5)
#: Rows marked per statement.
MARK_CHUNK = 500
_NOT_STARTED = (JobStatus.SENT, JobStatus.RECEIVED, JobStatus.RETRY)
_FINISHED = (JobStatus.SUCCESS, JobStatus.FAILURE, JobStatus.REVOKED)

#: How the recovery waits between two looks (a test passes time faster).
pause = time.sleep


def because(address: str, restarted_at: datetime | None, data_kept: bool = False) -> str:
    """Why a job was published again, for its row (`recovered_because`)."""
    if data_kept:
        when = f" at {timezone.localtime(restarted_at):%H:%M:%S}" if restarted_at else ""
        return f"broker {address} restarted{when} without its last writes"
    if restarted_at is None:
        return f"broker {address} lost its data"
    local = timezone.localtime(restarted_at)
    return f"broker {address} lost its data (restarted {local:%H:%M:%S})"


def lost_hostnames(now: datetime) -> set[str]:
    """Workers whose heartbeats stopped without a clean shutdown."""
    return set(
        WorkerBeat.objects.filter(
            last_seen_at__lt=now - heartbeat.online_within(), stopped_at__isnull=True
        ).values_list("hostname", flat=True)
    )


def candidates(
    before: datetime,
    now: datetime,
    running_only: bool = False,
    lost_workers: bool = True,
    since: datetime | None = None,
) -> set[str]:
    """Jobs recorded as published before `before` (when the loss was found; `since` or
    later, if given), not finished, not already marked for this loss, none of them
    waiting in the outbox or for the relay; with `running_only`, only the running jobs of
    lost workers; without `lost_workers`, none of those."""
    not_marked = Job.objects.filter(publish_due_at__isnull=True).exclude(recovered_at__gte=before)
    waiting: set[str] = set()
    if not running_only:
        sent = not_marked.filter(status__in=_NOT_STARTED, sent_at__lt=before)
        # Published by the relay (its options stored, no longer due) whose SENT event
        # died with the broker's event stream: PENDING on record, lost with the broker.
        relayed = not_marked.filter(
            status=JobStatus.PENDING, message__isnull=False, created_at__lt=before
        )
        if since is not None:
            sent = sent.filter(sent_at__gte=since)
            relayed = relayed.filter(created_at__gte=since)
        waiting.update(sent.values_list("task_id", flat=True))
        waiting.update(relayed.values_list("task_id", flat=True))
    lost = lost_hostnames(now) if lost_workers else set()
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
        lost = candidates(loss.detected_at, timezone.now())
        if lost:
            lost -= running_on_live_workers()
    else:
        # First what the live workers run: waiting for their answers also lets a worker
        # killed together with the broker become lost, so its running jobs are candidates.
        running = set() if running_only else running_on_live_workers()
        lost = candidates(loss.detected_at, timezone.now(), running_only) - running
    held = broker_loss.held_task_ids(url) if lost else set()
    still_held = lost & held
    to_mark = sorted(lost - held)
    if not (running_only or late):
        loss.still_held = len(still_held)
    marked = _mark(loss, to_mark)
    _finish(loss)
    if marked or still_held:
        logger.warning(
            "Broker %s lost its data: %s job(s) marked to publish again, %s still held by "
            "the broker (not published twice)",
            loss.broker,
            marked,
            len(still_held),
        )
    return loss


def _mark(loss: BrokerLoss, task_ids: Iterable[str]) -> int:
    """Mark these jobs for the relay (unless finished, or marked for this loss already);
    the loss's count saved per chunk, so a process that dies loses no count.

    After a restart that kept the data, only jobs still waiting to start: one whose
    STARTED was recorded since the second look runs on a worker (and STARTED on lost
    workers is not what such a restart loses)."""
    to_mark = sorted(task_ids)
    text = because(loss.broker, loss.restarted_at, data_kept=loss.data_kept)
    marked = 0
    for start in range(0, len(to_mark), MARK_CHUNK):
        chunk = to_mark[start : start + MARK_CHUNK]
        rows = Job.objects.filter(task_id__in=chunk, publish_due_at__isnull=True)
        if loss.data_kept:
            rows = rows.filter(status__in=(*_NOT_STARTED, JobStatus.PENDING))
        done = (
            rows.exclude(recovered_at__gte=loss.detected_at)
            .exclude(status__in=_FINISHED)
            .republish_after_broker_loss(timezone.now(), text)
        )
        marked += done
        loss.republished += done
        loss.save(update_fields=["still_held", "republished"])
    return marked


def _finish(loss: BrokerLoss) -> None:
    if loss.finished_at is None:
        loss.finished_at = timezone.now()
    loss.save(update_fields=["still_held", "republished", "finished_at"])


def missing_after_restart(url: str, found_at: datetime) -> set[str]:
    """The jobs a broker that restarted with its data (found at `found_at`) no longer
    holds.

    Jobs recorded as published in the RESTART_LOOKBACK before and not started, that the
    broker holds nowhere (queues, priority sub-lists, unacknowledged hash), that no live
    worker runs, that are not in the outbox and have no event waiting in the event
    streams (a row behind its job, which may have run), looked for twice VERIFY_AFTER
    apart. A job a worker takes from the restored queue between the two looks is in the
    unacknowledged hash until it finishes (acks_late), then its final event is in the
    stream until recorded, then its row is final: only a message the broker never got
    back is missing both times.
    """
    first = _unaccounted(url, found_at)
    if not first:
        return set()
    pause(VERIFY_AFTER)
    return first & _unaccounted(url, found_at)


def _unaccounted(url: str, before: datetime) -> set[str]:
    # Not the running jobs of lost workers: their unacknowledged entries were kept with
    # the data, and the visibility timeout gives them back. Not rows older than the
    # lookback: a restart loses its last writes, and an older row missing from the
    # broker was missing before it (a record that never caught up), not this restart's
    # to publish again.
    missing = candidates(
        before, timezone.now(), lost_workers=False, since=before - RESTART_LOOKBACK
    )
    if missing:
        missing -= running_on_live_workers()
    if missing:
        missing -= broker_loss.held_task_ids(url)
    if missing:
        missing -= unrecorded_task_ids()
    return missing


def look_takes_at_most() -> float:
    """Seconds a restart's look may take: two rounds of asking the live workers (each
    until the heartbeat window passes, for a worker that died), the pause between, and
    a minute for the reads and the marking."""
    asking = heartbeat.online_within().total_seconds() + INSPECT_PATIENCE + INSPECT_TIMEOUT
    return 2 * asking + VERIFY_AFTER + 60


def complete_restart(loss: BrokerLoss, url: str, missing: set[str] | None = None) -> BrokerLoss:
    """Mark the jobs a restart that kept the data lost: `missing` as found by the
    process that found the restart, else (a follow-up completing the row of a process
    that died) found again."""
    if missing is None:
        missing = missing_after_restart(url, loss.detected_at)
    marked = _mark(loss, missing)
    _finish(loss)
    logger.warning(
        "Broker %s restarted with its data but without %s job(s) recorded as published "
        "before: %s marked to publish again",
        loss.broker,
        len(missing),
        marked,
    )
    return loss
