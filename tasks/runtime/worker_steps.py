"""Worker integration: which sink each worker process uses, the recorder child, the relay.

Connected from TasksConfig.ready(), so `celery -A project worker` needs no flags.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

from celery import bootsteps, signals
from django.db import connection

from tasks.record import sinks
from tasks.record.waiting_jobs import WaitingJobsReporter
from tasks.runtime import dead_letter_queue, worker_counts
from tasks.runtime.heartbeat import Report

logger = logging.getLogger(__name__)

SUPERVISE_EVERY = 2.0  # seconds between checks that the recorder is alive
CHILD_FLUSH_INTERVAL = 0.5  # seconds a running task's STARTED may wait in its process


class RecorderProcess(bootsteps.StartStopStep):
    """Runs `python -m tasks.runtime.recorder_and_relay` beside the worker, for as long as
    the worker runs: the recorder (Redis brokers), the relay (tasks.publish.relay) and
    the worker's heartbeat (tasks.runtime.heartbeat).

    A process of its own, started fresh rather than forked: the relay's publishes stay
    off the worker's main process, and its database connection never meets the pool's
    forks (SQLite's locks do not survive a fork made while another thread holds one:
    a pool child then waited for a lock nobody held).

    Every SUPERVISE_EVERY seconds the worker also tells it, on its stdin, its jobs
    finished and failed (tasks.runtime.worker_counts) and its pool's size (which
    pool_grow / pool_shrink change), for the heartbeat to write.
    """

    label = "Job recorder and relay"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.process: subprocess.Popen[bytes] | None = None
        self.queues = ""
        self.identity: list[str] = []
        self._stopping = False
        self._pool: Any = None
        # Here, before the pool forks its children: they inherit the shared counters.
        worker_counts.install()

    def start(self, parent: Any) -> None:
        # The relay publishes the jobs of the queues this worker consumes (`-Q`).
        self.queues = ",".join(sorted(parent.app.amqp.queues.consume_from))
        pool = getattr(parent.pool_cls, "__module__", str(parent.pool_cls)).rsplit(".", 1)[-1]
        self._pool = parent
        self.identity = [
            *("--hostname", parent.hostname),
            *("--pool", pool),
            *("--concurrency", str(parent.concurrency or 0)),
            *("--started-at", datetime.now(UTC).isoformat()),
            "--reports",
        ]
        self._spawn()
        signals.worker_shutdown.connect(
            self._stop_recorder, weak=False, dispatch_uid="tasks.runtime.recorder_stop"
        )
        # A recorder that died is restarted; its unacknowledged entries are reclaimed.
        parent.timer.call_repeatedly(SUPERVISE_EVERY, self._supervise)

    def _spawn(self) -> None:
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "tasks.runtime.recorder_and_relay"),
                *("--parent", str(os.getpid()), "--queues", self.queues),
                *self.identity,
            ],
            stdin=subprocess.PIPE,
        )
        assert self.process.stdin is not None
        # Never wait for it: a report that does not fit in the pipe is skipped (the next
        # one carries the same totals).
        os.set_blocking(self.process.stdin.fileno(), False)
        logger.info("Job recorder started (pid %s)", self.process.pid)
        self._report()

    def _supervise(self) -> None:
        if not self._stopping and self.process is not None and self.process.poll() is not None:
            logger.error("Job recorder exited with %s; restarting it", self.process.returncode)
            self._spawn()
        else:
            self._report()

    def _report(self) -> None:
        if self.process is None or self.process.stdin is None:
            return
        counts = worker_counts.totals()
        size = getattr(getattr(self._pool, "pool", None), "num_processes", None)
        concurrency = size if isinstance(size, int) else getattr(self._pool, "concurrency", 0)
        line = Report(counts.processed, counts.failed, concurrency or 0).line()
        # Full (the next report says the same and more) or the recorder is gone.
        with contextlib.suppress(OSError, ValueError):
            os.write(self.process.stdin.fileno(), line)

    def stop(self, parent: Any) -> None:
        """A warm shutdown: keep the recorder until the worker has shut down.

        The worker's steps stop in the reverse of an order Celery does not fix (it
        varies from one start to the next), so the pool may still be finishing its jobs
        after this step is stopped: the recorder records their ends, and the heartbeat
        keeps the worker online, until `worker_shutdown`, sent once the pool is joined.
        """
        self._stopping = True

    def terminate(self, parent: Any) -> None:
        """A cold shutdown: the pool's jobs are killed, nothing to wait for."""
        self._stop_recorder()

    def _stop_recorder(self, **_: Any) -> None:
        self._stopping = True
        try:
            sinks.flush()
        except Exception:
            logger.exception("Could not flush recorded events at shutdown")
        if self.process is None or self.process.poll() is not None:
            return
        self._report()  # the final counts, written with the "stopped" mark
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def install_worker_sink(**_: Any) -> None:
    """The worker's main process: events go to the stream (or the database, brokers
    other than Redis) from a flusher thread, off Celery's event loop."""
    url = sinks.stream_url()
    if url:
        sinks.install(sinks.StreamSink(url, autoflush=True))
    elif _sqlite():
        # One writer at a time: no second connection in a background thread.
        sinks.install(sinks.DatabaseSink())
    else:
        sinks.install(sinks.BufferedDatabaseSink())


def install_child_sink(**_: Any) -> None:
    """A pool child: a short task's events go in one round trip when it ends.

    A task still running after CHILD_FLUSH_INTERVAL has its STARTED flushed by a
    thread, so the dashboard shows it running instead of waiting for it to end.
    """
    url = sinks.stream_url()
    if url:
        sink: sinks.Sink = sinks.StreamSink(
            url, autoflush=True, interval=CHILD_FLUSH_INTERVAL, hold_final=True
        )
    else:
        # SQLite: flushed by the task's end only (no second writer thread; a running
        # task shows STARTED at its first progress report instead).
        sink = sinks.BufferedDatabaseSink(
            interval=CHILD_FLUSH_INTERVAL, hold_final=True, autoflush=not _sqlite()
        )
    sinks.install(sink)


def _sqlite() -> bool:
    return connection.vendor == "sqlite"


def flush_after_task(**_: Any) -> None:
    # task_postrun runs in the child before it reports the result to the main process,
    # so the events are on Redis before the message is acknowledged (acks_late).
    sinks.flush_durably()


def declare_dead_letter_queue(**_: Any) -> None:
    """RabbitMQ moves rejected messages to `dead_letter` only if that queue exists."""
    if dead_letter_queue.is_amqp():
        try:
            dead_letter_queue.declare()
        except Exception:
            logger.exception("Could not declare the dead-letter queue")


def connect(app: Any) -> None:
    app.steps["worker"].add(RecorderProcess)
    app.steps["worker"].add(WaitingJobsReporter)
    app.steps["consumer"].add("tasks.runtime.paused_queues:PausedQueues")
    signals.worker_init.connect(install_worker_sink, weak=False, dispatch_uid="tasks.worker_sink")
    signals.worker_process_init.connect(
        install_child_sink, weak=False, dispatch_uid="tasks.child_sink"
    )
    signals.task_postrun.connect(flush_after_task, weak=False, dispatch_uid="tasks.flush")
    signals.worker_ready.connect(
        declare_dead_letter_queue, weak=False, dispatch_uid="tasks.runtime.dead_letter_queue"
    )
