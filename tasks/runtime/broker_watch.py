"""Noticing that the broker lost its data, or restarted; what was lost is marked for
the relay to publish again (tasks.runtime.broker_recovery).

A thread of the process beside every worker (tasks.runtime.recorder_and_relay) reads the
broker's marker (tasks.broker.loss) and its run_id every TASKS_BROKER_WATCH_INTERVAL
seconds (a layer setting, tasks.conf): one pipelined GET and INFO, nothing on a job's
path. A marker this process had seen and that is now missing is the evidence: the
broker restarted without persistence, failed over to an empty replica, or was flushed.
A new run_id with the marker still there is a restart that kept the data, maybe not
its last writes: what it no longer holds is looked for (twice, some seconds apart).

Then one process recovers: the one whose SET NX writes the new marker (or, for a
restart that kept the data, holds the lease of a key named after the new run_id; a
lease whose holder died goes to the next watch that asks). It writes the
BrokerLoss row first, marks the lost jobs (due for the relay now, recovered_at,
recoveries + 1, recovered_because), and sets the row's finished_at last. Should it die
mid-way, any watcher finds the unfinished row once it is older than STALLED_AFTER and
completes it: the marking skips rows already marked for this loss, so completing twice
marks nothing twice. A Redis lock (the lease) keeps two completions from running at once.

Rows recorded after the first scan of a lost dataset (the sinks replay the events they
flushed in the last seconds into the new stream, tasks.record.sinks: the SENT of a plain
`.delay()` whose row was not written yet) are marked by the follow-up's re-scan while
the loss is younger than RESCAN_WINDOW. A STARTED job whose worker is not yet known to
be lost when the loss is found is looked at again while the loss is recent
(LOST_WORKER_WINDOW): once its worker's heartbeats have stopped long enough, it is
marked too.

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from tasks.broker import broker_url, kind, redis_lists
from tasks.broker import loss as broker_loss
from tasks.conf import layer_settings
from tasks.models import BrokerLoss
from tasks.runtime import broker_recovery

logger = logging.getLogger(__name__)

#: How long after a loss its candidates are looked for again at each follow-up: rows
#: recorded after the first scan (SENT events the sinks replayed into the new stream,
#: tasks.record.sinks) are marked then.
RESCAN_WINDOW = timedelta(minutes=2)
#: An unfinished BrokerLoss row older than this is completed by another process.
STALLED_AFTER = timedelta(seconds=60)
#: How long after a loss STARTED jobs of workers found lost later are still recovered.
LOST_WORKER_WINDOW = timedelta(minutes=30)
_LOCK_KEY = "tasks:broker-recovery:{}"
#: Held (SET NX) by the process that looks into a restart that kept the data, for as
#: long as a look may take (broker_recovery.look_takes_at_most), then set to _DONE for a
#: day (a run_id is never reused). The others ask at each check: a lease that expired
#: without a _DONE (its holder died) goes to the next of them.
_RESTART_KEY = "tasks:broker-restart:{}"
RESTART_DONE_TTL = 24 * 3600
_DONE = "done"
_SECOND = timedelta(seconds=1)
_REDIS_ERRORS = (redis.RedisError, OSError)


def check_interval() -> float:
    """Seconds between two looks at the marker (TASKS_BROKER_WATCH_INTERVAL; 0: off)."""
    return layer_settings().broker_watch_interval


def follow_up_interval() -> float:
    """Seconds between two looks for unfinished or recent losses (a database query)."""
    return layer_settings().broker_watch_follow_up


def enabled() -> bool:
    return check_interval() > 0 and kind() == "redis"


@dataclass
class _Restart:
    """A restart that kept the data, as this process found it."""

    run_id: str
    previous_run_id: str
    last_seen: datetime  # the previous server, last seen by this process
    found_at: datetime  # the new one, first seen
    recorded: bool = False  # its BrokerLoss row written by this process


class BrokerWatch:
    """The watch loop, in a daemon thread of the recorder process."""

    def __init__(self, hostname: str = "", url: str | None = None) -> None:
        self.url = url or broker_url()
        self.hostname = hostname or f"{socket.gethostname()}:{os.getpid()}"
        self.seen: broker_loss.Marker | None = None
        self.seen_at: datetime | None = None
        self.run_id = ""
        self._restart: _Restart | None = None
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
        """One look at the marker and the run_id; the loss recovered when this process
        found it."""
        found, run_id = broker_loss.read_marker_and_run_id(self.url)
        now = timezone.now()
        if found is not None:
            kept = self.seen is not None and found.token == self.seen.token
            if not kept:
                self.seen = found
            last_seen, self.seen_at = self.seen_at, now
            if kept and self.run_id and run_id and run_id != self.run_id:
                # self.run_id moves on inside, once the restart was looked into (here or
                # elsewhere): a look that fails half-way (the database cut), or another
                # process's that dies, is taken up again at a next check.
                if self._restart is None or self._restart.run_id != run_id:
                    self._restart = _Restart(run_id, self.run_id, last_seen or now, now)
                return self.verify_restart(self._restart)
            self.run_id = run_id or self.run_id  # "": INFO refused (a proxy), no restarts
            return None
        marker = broker_loss.Marker.new()
        won = broker_loss.claim_marker(self.url, marker)
        previous, previous_at, previous_run_id = self.seen, self.seen_at, self.run_id
        if won:
            self.seen, self.seen_at, self.run_id = marker, now, run_id
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
            and (seen_at is None or started >= seen_at - _SECOND)
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
        with self._leased(loss):
            broker_recovery.complete(loss, self.url)
        return loss

    def verify_restart(self, restart: _Restart) -> BrokerLoss | None:
        """The broker restarted and kept its data (the marker is there): one process looks
        for the jobs it no longer holds (its last writes, not on disk or not replicated
        when it stopped)."""
        client = redis_lists.client(self.url)
        key = _RESTART_KEY.format(restart.run_id)
        lease = int(broker_recovery.look_takes_at_most())
        if not client.set(key, self.hostname, nx=True, ex=lease):
            holder = broker_loss.text(client.get(key))
            if holder == _DONE:
                self.run_id = restart.run_id
                return None
            if holder != self.hostname:  # this one's own lease: it failed half-way before
                return None  # another process looks; asked again at the next check
            if restart.recorded:
                self._restart_done(key, restart.run_id)  # only the "done" was missing
                return None
            client.expire(key, lease)  # looking again: the lease runs from now
        address = self._address()
        logger.info(
            "Broker %s restarted with its data (run_id %s, was %s); looking for jobs it no "
            "longer holds",
            address,
            restart.run_id,
            restart.previous_run_id,
        )
        missing = broker_recovery.missing_after_restart(self.url, restart.found_at)
        if not missing:
            logger.info("Broker %s holds every job published before its restart", address)
            self._restart_done(key, restart.run_id)
            return None
        # When the new server started, if it did since the old one was last seen (a
        # replica promoted by a failover had started long before).
        _, started = _server(self.url)
        restarted_at = (
            started if started is not None and started >= restart.last_seen - _SECOND else None
        )
        what = (
            f"restarted at {restarted_at:%Y-%m-%d %H:%M:%S} UTC"
            if restarted_at
            else f"was replaced between {restart.last_seen:%H:%M:%S} and "
            f"{restart.found_at:%H:%M:%S} UTC (another server, e.g. a replica promoted)"
        )
        loss = BrokerLoss.objects.create(
            detected_at=restart.found_at,
            detected_by=self.hostname[:255],
            broker=address[:255],
            evidence=(
                f"The broker {what} with its data (the marker "
                f"{self.seen.token if self.seen else ''} was kept) but held {len(missing)} "
                f"job(s) recorded as published before nowhere, twice "
                f"{broker_recovery.VERIFY_AFTER:g} s apart: writes it had not kept."
            ),
            restarted_at=restarted_at,
            data_kept=True,
        )
        restart.recorded = True  # from here on, an unfinished row is completed by a follow-up
        self._restart_done(key, restart.run_id)
        with self._leased(loss):
            broker_recovery.complete_restart(loss, self.url, missing)
        return loss

    def _restart_done(self, key: str, run_id: str) -> None:
        """Tell the other watches this restart was looked into (unless the lease went to
        another process meanwhile: its own "done" follows), and look at it no more."""
        client = redis_lists.client(self.url)
        if broker_loss.text(client.get(key)) == self.hostname:
            client.set(key, _DONE, ex=RESTART_DONE_TTL)
        self.run_id = run_id

    @contextmanager
    def _leased(self, loss: BrokerLoss) -> Iterator[None]:
        """Hold the loss's lease while recovering it (the follow-ups keep off)."""
        client = redis_lists.client(self.url)
        lock = _LOCK_KEY.format(loss.pk)
        client.set(lock, self.hostname, ex=int(STALLED_AFTER.total_seconds()))
        try:
            yield
        finally:
            _release(client, lock, self.hostname)


def _server(url: str) -> tuple[str, datetime | None]:
    try:
        return broker_loss.server(url)
    except _REDIS_ERRORS:
        return "", None


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
                if loss.data_kept:
                    broker_recovery.complete_restart(loss, url)
                else:
                    broker_recovery.complete(loss, url)
            elif not loss.data_kept:
                # A restart that kept the data has no replayed events nor lost workers'
                # vanished entries to look for again.
                rescan = now - loss.detected_at < RESCAN_WINDOW
                broker_recovery.complete(loss, url, running_only=not rescan, late=rescan)
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
