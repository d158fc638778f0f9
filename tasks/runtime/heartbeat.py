"""Worker heartbeats: a row per worker, refreshed every few seconds while it runs.

Beaten from the process beside the worker (tasks.runtime.recorder_and_relay), not from
the worker itself: that process already holds a database connection and exits when its
worker is gone, so a worker killed with SIGKILL stops beating at once, and the worker's
main process, which forks pool children, never writes to the database (a fork taken
while another thread holds SQLite's lock leaves the child waiting for it).

What the beat carries that only the worker knows (jobs finished and failed, the pool's
size after a grow or shrink) the worker's main process reports to that process on its
stdin (`Report`, one JSON line every few seconds, tasks.runtime.worker_steps); the beat
writes the latest report.

The interval is the setting TASKS_HEARTBEAT_INTERVAL (tasks.conf): the process beside
each worker beats at that pace and the web processes judge by it, so all of them must
read the same value. A worker is online while its last beat is younger than three
intervals, lost after.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import close_old_connections, connection
from django.utils import timezone

from tasks.conf import layer_settings
from tasks.models import WorkerBeat

logger = logging.getLogger(__name__)


def interval() -> float:
    """Seconds between two beats."""
    return layer_settings().heartbeat_interval


def online_within() -> timedelta:
    """How recent a worker's last beat must be for it to count as online: three beats,
    so one late beat is not a lost worker."""
    return timedelta(seconds=3 * interval())


#: Workers whose last beat is older than this are no longer listed (worker_states).
RECENT_WITHIN = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    hostname: str
    pid: int
    pool: str
    concurrency: int
    queues: Sequence[str]


@dataclass(frozen=True, slots=True)
class Report:
    """What the worker's main process tells the process beside it: its counts so far
    (tasks.runtime.worker_counts) and its pool's size now."""

    processed: int
    failed: int
    concurrency: int

    def line(self) -> bytes:
        return (json.dumps([self.processed, self.failed, self.concurrency]) + "\n").encode()

    @classmethod
    def parse(cls, line: str | bytes) -> Report | None:
        try:
            processed, failed, concurrency = json.loads(line)
            return cls(int(processed), int(failed), int(concurrency))
        except (ValueError, TypeError):
            return None


def beat(worker: WorkerIdentity, started_at: datetime, report: Report | None = None) -> None:
    """Write one heartbeat (the row is created on the first), with the latest report:
    without one yet (a recorder just restarted) the counts on the row stay as they are."""
    defaults: dict[str, object] = {
        "pid": worker.pid,
        "pool": worker.pool,
        "concurrency": worker.concurrency,
        "queues": sorted(worker.queues),
        "started_at": started_at,
        "last_seen_at": timezone.now(),
        "stopped_at": None,
    }
    if report is not None:
        defaults.update(
            processed=report.processed, failed=report.failed, concurrency=report.concurrency
        )
    WorkerBeat.objects.update_or_create(hostname=worker.hostname, defaults=defaults)


def stopped(hostname: str, report: Report | None = None) -> None:
    """The worker shut down cleanly: offline at once, not after the heartbeat window."""
    changes: dict[str, object] = {"stopped_at": timezone.now()}
    if report is not None:
        changes.update(processed=report.processed, failed=report.failed)
    WorkerBeat.objects.filter(hostname=hostname).update(**changes)


def online(now: datetime | None = None) -> list[WorkerBeat]:
    """Workers whose last beat is recent and that did not shut down."""
    since = (now or timezone.now()) - online_within()
    return list(
        WorkerBeat.objects.filter(last_seen_at__gte=since, stopped_at__isnull=True).order_by(
            "hostname"
        )
    )


class Heartbeat:
    """Beats for `worker` on a thread until `should_stop()` says so."""

    def __init__(self, worker: WorkerIdentity, started_at: datetime | None = None) -> None:
        self.worker = worker
        self.started_at = started_at or timezone.now()
        #: The worker's latest Report (set by `read_reports`).
        self.report: Report | None = None
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    def read_reports(self, fd: int) -> None:
        """Keep `report` up to date from the worker's lines on file descriptor `fd` (its
        stdin), on a thread of its own; the pipe's end (the worker gone) ends the thread.

        Raw reads (os.read), not a file object: a daemon thread blocked in a buffered
        reader makes the interpreter abort at exit (it cannot take the reader's lock).
        """

        def read() -> None:
            pending = b""
            while chunk := os.read(fd, 4096):
                *lines, pending = (pending + chunk).split(b"\n")
                for line in reversed(lines):
                    report = Report.parse(line)
                    if report is not None:
                        self.report = report
                        break

        threading.Thread(target=read, name="worker-reports", daemon=True).start()

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
                    beat(self.worker, self.started_at, self.report)
                except Exception:
                    # A database outage must not end the beats: the next one may work.
                    logger.exception("Heartbeat of %s not written", self.worker.hostname)
                    connection.close()
                self._wake.wait(interval())
            if shut_down():
                stopped(self.worker.hostname, self.report)
        except Exception:
            logger.exception("Heartbeat of %s: could not mark it stopped", self.worker.hostname)
        finally:
            connection.close()

    def join(self, timeout: float) -> None:
        """Wake the thread (it sees `should_stop()` and writes its last row) and wait."""
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
