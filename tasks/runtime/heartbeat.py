"""Worker heartbeats: a row per worker, refreshed every few seconds while it runs.

Beaten from the process beside the worker (tasks.runtime.recorder_and_relay), not from
the worker itself: that process already holds a database connection and exits when its
worker is gone, so a worker killed with SIGKILL stops beating at once, and the worker's
main process, which forks pool children, never writes to the database (a fork taken
while another thread holds SQLite's lock leaves the child waiting for it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import close_old_connections, connection
from django.utils import timezone

from tasks.models import WorkerBeat

logger = logging.getLogger(__name__)

#: Seconds between beats. A worker is online while its last beat is younger than
#: ONLINE_WITHIN (three beats: one late beat is not a lost worker).
INTERVAL = 5.0
ONLINE_WITHIN = timedelta(seconds=3 * INTERVAL)


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    hostname: str
    pid: int
    pool: str
    concurrency: int
    queues: Sequence[str]


def beat(worker: WorkerIdentity, started_at: datetime) -> None:
    """Write one heartbeat (the row is created on the first)."""
    WorkerBeat.objects.update_or_create(
        hostname=worker.hostname,
        defaults={
            "pid": worker.pid,
            "pool": worker.pool,
            "concurrency": worker.concurrency,
            "queues": sorted(worker.queues),
            "started_at": started_at,
            "last_seen_at": timezone.now(),
            "stopped_at": None,
        },
    )


def stopped(hostname: str) -> None:
    """The worker shut down cleanly: offline at once, not after the heartbeat window."""
    WorkerBeat.objects.filter(hostname=hostname).update(stopped_at=timezone.now())


def online(now: datetime | None = None) -> list[WorkerBeat]:
    """Workers whose last beat is recent and that did not shut down."""
    since = (now or timezone.now()) - ONLINE_WITHIN
    return list(
        WorkerBeat.objects.filter(last_seen_at__gte=since, stopped_at__isnull=True).order_by(
            "hostname"
        )
    )


class Heartbeat:
    """Beats for `worker` on a thread until `should_stop()` says so."""

    def __init__(self, worker: WorkerIdentity) -> None:
        self.worker = worker
        self.started_at = timezone.now()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    def start(self, should_stop: Callable[[], bool], shut_down: Callable[[], bool]) -> None:
        """Beat until `should_stop()`; then, if `shut_down()` (a clean worker shutdown
        rather than a lost worker), mark the worker stopped."""
        self._thread = threading.Thread(
            target=self._run, args=(should_stop, shut_down), name="heartbeat", daemon=True
        )
        self._thread.start()

    def _run(self, should_stop: Callable[[], bool], shut_down: Callable[[], bool]) -> None:
        try:
            while not should_stop():
                try:
                    close_old_connections()
                    beat(self.worker, self.started_at)
                except Exception:
                    # A database outage must not end the beats: the next one may work.
                    logger.exception("Heartbeat of %s not written", self.worker.hostname)
                    connection.close()
                self._wake.wait(INTERVAL)
            if shut_down():
                stopped(self.worker.hostname)
        except Exception:
            logger.exception("Heartbeat of %s: could not mark it stopped", self.worker.hostname)
        finally:
            connection.close()

    def join(self, timeout: float) -> None:
        """Wake the thread (it sees `should_stop()` and writes its last row) and wait."""
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
