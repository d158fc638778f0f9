"""Where this process sends recorded events before they reach the database.

- `StreamSink` (worker processes, Redis broker): events go to a Redis stream on the
  broker's server; a recorder process writes them in batches. A pool child buffers its
  events during a task and flushes them in one round trip when the task ends, before
  Celery acknowledges the message, so a finished job's state is as durable as the
  message itself. The main process flushes from a small thread, off its event loop.
- Processes that only publish (web, beat, shells) use a `StreamSink` too, flushed from a
  thread every `FLUSH_INTERVAL`, on a stream of their own (`PUBLISHED_STREAM`): a
  publish costs a few microseconds more than Celery's, not a database round trip. If
  the process dies before a flush, the worker still records the job when it receives
  the message.
- A broker that loses its data (a Redis restarted without persistence) loses the events
  still in the stream with it, among them the SENT of a plain `.delay()` whose row the
  recorder had not written yet: the job's message and its record died together. So a
  `StreamSink` on the broker's Redis keeps what it flushed in the last REPLAY_SECONDS
  (at most REPLAY_MAX entries), reads the broker's marker (tasks.broker.loss) with each
  flush (a GET in the same write as the XADD: no extra round trip), and when the marker
  it saw is missing or another, adds those entries to the stream again (the recording
  service's writes are idempotent). The recovery then finds those jobs
  (tasks.runtime.broker_watch's follow-up re-scans recent losses).
- `BufferedDatabaseSink`: the same batching, written straight to the database (brokers
  other than Redis, where there is no stream).
- `DatabaseSink`: every event written at once (other brokers, and tests that ask for it).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

import redis
from celery import current_app
from celery.utils.saferepr import saferepr
from django.db import InterfaceError, OperationalError, connection

from tasks.conf import layer_settings
from tasks.record import service, storable
from tasks.record.events import JobEvent, ResultEvent
from tasks.record.stream_writer import StreamWriter

logger = logging.getLogger(__name__)

# Two streams, so that the workers' events never queue behind a burst of enqueues: a
# bulk import that publishes 100,000 jobs puts 100,000 SENT events on the publishers'
# stream, and the recorder keeps writing what the workers report (RECEIVED, STARTED,
# SUCCESS ...) beside that backlog instead of after it. The writes are order-independent
# (tasks.record.service: a late SENT never overwrites SUCCESS), so nothing relies on one
# stream's order across the two.
STREAM = "tasks:events"  # worker processes: main process and pool children
PUBLISHED_STREAM = "tasks:events:published"  # processes that only publish (web, beat)
STREAMS = (STREAM, PUBLISHED_STREAM)  # the recorder reads them in this order of priority
_FINAL = frozenset({"SUCCESS", "FAILURE", "REVOKED", "RETRY"})
FLUSH_INTERVAL = 0.1  # seconds a buffered event may wait
MAX_BUFFER = 500  # events that trigger a flush before the interval
#: The broker's marker (tasks.broker.loss.MARKER_KEY, behind the transport's
#: global_keyprefix; record may not import broker, a test keeps the two equal).
BROKER_MARKER_KEY = "tasks:broker-marker"
#: Seconds a flushed entry is kept for a replay: entries that sat this long in a stream
#: whose marker was still there have been read by a recorder.
REPLAY_SECONDS = 5.0
REPLAY_MAX = 1_000  # entries kept at most
#: Seconds between two reads of the marker by an idle sink that still keeps entries.
IDLE_MARKER_CHECK = 1.0


class Sink(Protocol):
    def emit_job(self, event: JobEvent) -> None: ...
    def emit_result(self, event: ResultEvent) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class DatabaseSink:
    """Writes each event at once."""

    def emit_job(self, event: JobEvent) -> None:
        _write_reconnecting([json_safe(event)], [])

    def emit_result(self, event: ResultEvent) -> None:
        _write_reconnecting([], [event])

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _write_reconnecting(jobs: list[JobEvent], results: list[ResultEvent]) -> None:
    """Write, and once more on a new connection if the database dropped this one.

    A task's own query can find its connection killed (database restart, failover,
    pg_terminate_backend); the job's next state must still be written. Inside a
    transaction the caller's work is lost with the connection, so the error stands.
    """
    try:
        storable.write_or_apart(service.write, jobs, results)
    except (OperationalError, InterfaceError):
        if connection.in_atomic_block:
            raise
        connection.close()
        storable.write_or_apart(service.write, jobs, results)


class _Buffer:
    """Events waiting to be flushed; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.jobs: list[JobEvent] = []
        self.results: list[ResultEvent] = []

    def add_job(self, event: JobEvent) -> int:
        with self._lock:
            self.jobs.append(event)
            return len(self.jobs) + len(self.results)

    def add_result(self, event: ResultEvent) -> int:
        with self._lock:
            self.results.append(event)
            return len(self.jobs) + len(self.results)

    def has_final(self) -> bool:
        with self._lock:
            return bool(self.results) or any(e.status in _FINAL for e in self.jobs)

    def take(self) -> tuple[list[JobEvent], list[ResultEvent]]:
        with self._lock:
            jobs, results = self.jobs, self.results
            self.jobs, self.results = [], []
            return jobs, results

    def put_back(self, jobs: list[JobEvent], results: list[ResultEvent]) -> None:
        with self._lock:
            self.jobs[:0] = jobs
            self.results[:0] = results


class _Flusher(threading.Thread):
    """Calls `flush` every interval, or sooner when asked."""

    def __init__(self, flush: Any, interval: float) -> None:
        super().__init__(name="tasks-event-flusher", daemon=True)
        self._flush = flush
        self._interval = interval
        self._wake = threading.Event()
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self._flush()
            except Exception:
                logger.exception("Flushing recorded job events failed; will retry")

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()


class _BufferedSink:
    """Buffers events and writes them in one go; subclasses say where (`_write`).

    With `autoflush`, a thread flushes every `interval` (or when MAX_BUFFER events
    wait); without it, the owner calls `flush()` (a pool child, at the end of a task).
    """

    def __init__(
        self, autoflush: bool, interval: float = FLUSH_INTERVAL, hold_final: bool = False
    ) -> None:
        self._buffer = _Buffer()
        self._flush_lock = threading.Lock()
        self._flusher: _Flusher | None = None
        # A pool child's thread sends a running task's STARTED, never part of how it
        # ended: its result and final state must reach storage together, in the
        # flush that precedes the acknowledgement (else a kill in between could leave
        # the result stored and the job STARTED, and Celery would not run it again).
        self._hold_final = hold_final
        if autoflush:
            self._flusher = _Flusher(self._background_flush, interval)
            self._flusher.start()

    def _background_flush(self) -> None:
        if self._hold_final and self._buffer.has_final():
            return
        self.flush()
        self._idle()

    def _idle(self) -> None:
        """Called by the flusher thread after each flush (nothing by default)."""

    def emit_job(self, event: JobEvent) -> None:
        if self._buffer.add_job(event) >= MAX_BUFFER and self._flusher:
            self._flusher.wake()

    def emit_result(self, event: ResultEvent) -> None:
        if self._buffer.add_result(event) >= MAX_BUFFER and self._flusher:
            self._flusher.wake()

    def flush(self) -> None:
        with self._flush_lock:
            jobs, results = self._buffer.take()
            if not jobs and not results:
                return
            # A child's STARTED, result and final state become one event each.
            jobs = service.merge_job_events(jobs, per_attempt=True)
            results = service.merge_result_events(results)
            try:
                self._write(jobs, results)
            except Exception:
                self._buffer.put_back(jobs, results)
                raise

    def _write(self, jobs: list[JobEvent], results: list[ResultEvent]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self._flusher:
            self._flusher.stop()
        self.flush()


class BufferedDatabaseSink(_BufferedSink):
    """Batches events and writes them to the database from a background thread."""

    def __init__(
        self, interval: float = FLUSH_INTERVAL, hold_final: bool = False, autoflush: bool = True
    ) -> None:
        super().__init__(autoflush=autoflush, interval=interval, hold_final=hold_final)

    def _write(self, jobs: list[JobEvent], results: list[ResultEvent]) -> None:
        try:
            storable.write_or_apart(service.write, [json_safe(event) for event in jobs], results)
        except Exception:
            connection.close()
            raise
        finally:
            if threading.current_thread() is self._flusher:
                connection.close_if_unusable_or_obsolete()


class StreamSink(_BufferedSink):
    """Puts events on the Redis stream for the recorder process.

    `autoflush=False` (pool children): events wait until `flush()`, which the task's
    end triggers. `autoflush=True` (the worker's main process, publishers): a thread
    flushes them.
    """

    def __init__(
        self,
        url: str,
        autoflush: bool,
        stream: str = STREAM,
        interval: float = FLUSH_INTERVAL,
        hold_final: bool = False,
    ) -> None:
        self._client = redis.Redis.from_url(url)
        self._stream = stream
        self._writer = StreamWriter(self._client, stream, _broker_marker_key(url))
        # (monotonic time flushed, payload): what a broker loss may have taken.
        self._retained: deque[tuple[float, str]] = deque(maxlen=REPLAY_MAX)
        self._marker: bytes | None = None  # the marker last read
        self._replay_due = False
        self._last_asked = 0.0
        super().__init__(autoflush=autoflush, interval=interval, hold_final=hold_final)

    def _write(self, jobs: list[JobEvent], results: list[ResultEvent]) -> None:
        payload = encode(jobs, results)
        self._writer.send(payload)
        self._last_asked = time.monotonic()
        self._retain(payload)
        self._after_readings()

    def _retain(self, payload: str) -> None:
        if self._writer.marker_key is not None:
            self._retained.append((time.monotonic(), payload))

    def _after_readings(self) -> None:
        """Act on the marker's readings: replay the kept entries after a loss, else forget
        those old enough. Never raises: a broker down is retried at the next flush."""
        readings, self._writer.readings = self._writer.readings, []
        for asked_at, value in readings:
            if self._marker is not None and value != self._marker:
                self._replay_due = True
                logger.warning(
                    "The broker's marker changed: its event stream was lost; adding the "
                    "%s entries of the last %.0f s again",
                    len(self._retained),
                    REPLAY_SECONDS,
                )
            elif not self._replay_due:
                while self._retained and self._retained[0][0] < asked_at - REPLAY_SECONDS:
                    self._retained.popleft()
            self._marker = value
        if not self._replay_due:
            return
        try:
            for _, payload in list(self._retained):
                self._writer.send(payload, ask_marker=False)
        except Exception as exc:
            logger.warning("Could not replay event entries yet (%s); trying again", exc)
            return
        self._replay_due = False

    def read_marker(self) -> bytes | None:
        """Read the broker's marker now (one round trip) and act on it; what it holds."""
        with self._flush_lock:
            self._last_asked = time.monotonic()
            self._writer.ask_marker()
            self._after_readings()
            return self._marker

    def _idle(self) -> None:
        """Nothing to send, but entries kept: read the marker now and then, so a loss
        that follows the last flush is still noticed (a background thread, never a
        publisher's)."""
        if not self._retained or time.monotonic() - self._last_asked < IDLE_MARKER_CHECK:
            return
        with self._flush_lock:
            self._last_asked = time.monotonic()
            try:
                self._writer.ask_marker()
            except (redis.RedisError, OSError) as exc:
                logger.debug("Could not read the broker's marker (%s)", exc)
                return
            self._after_readings()

    def close(self) -> None:
        super().close()
        with self._flush_lock:
            self._writer.close()
        self._client.close()


def _broker_marker_key(url: str) -> str | None:
    """The broker marker's key when this stream lives on the broker's Redis (else a loss
    of the broker's data leaves the stream alone)."""
    try:
        conf = current_app.conf
        if str(conf.broker_url or "") != url:
            return None
        prefix = (conf.broker_transport_options or {}).get("global_keyprefix") or ""
    except Exception:
        return None
    return str(prefix) + BROKER_MARKER_KEY


def encode(jobs: list[JobEvent], results: list[ResultEvent]) -> str:
    return json.dumps(
        {"j": [e.as_message() for e in jobs], "r": [e.as_message() for e in results]},
        default=_json_default,
        separators=(",", ":"),
    )


def decode(payload: bytes | str) -> tuple[list[JobEvent], list[ResultEvent]]:
    data = json.loads(payload)
    return (
        [JobEvent.from_message(item) for item in data.get("j", ())],
        [ResultEvent.from_message(item) for item in data.get("r", ())],
    )


def _json_default(value: Any) -> Any:
    """Never raises: one odd argument or result must not lose a whole batch of events."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return {"__repr__": saferepr(value, maxlen=4096)}


def json_safe(event: JobEvent) -> JobEvent:
    """The event with values JSON can hold (for sinks that skip the stream's encoding)."""
    encoded = json.dumps(event.as_message(), default=_json_default, separators=(",", ":"))
    return JobEvent.from_message(json.loads(encoded))


# --- the process's sink -------------------------------------------------------------------

_sink: Sink | None = None
_sink_pid: int | None = None
_lock = threading.Lock()


def stream_url() -> str | None:
    """The Redis URL for the event stream, or None when events go to the database."""
    configured = layer_settings().event_stream_url
    if configured is not None:
        return configured or None
    broker = str(current_app.conf.broker_url or "")
    return broker if broker.startswith(("redis://", "rediss://", "unix://")) else None


def current() -> Sink:
    """This process's sink; a forked child never uses its parent's."""
    global _sink, _sink_pid
    if _sink is None or _sink_pid != os.getpid():
        with _lock:
            if _sink is None or _sink_pid != os.getpid():
                _sink, _sink_pid = _default_sink(), os.getpid()
    return _sink


def install(sink: Sink) -> None:
    global _sink, _sink_pid
    with _lock:
        previous = _sink if _sink_pid == os.getpid() else None
        _sink, _sink_pid = sink, os.getpid()
    if previous is not None and previous is not sink:
        previous.close()


def flush() -> None:
    current().flush()


def flush_durably(patience: float = 30.0) -> bool:
    """Flush, retrying while storage is unreachable; False if it stayed unreachable.

    A pool child calls this before its task's message is acknowledged: waiting out a
    database restart is better than acknowledging a job whose end is not stored.
    Events that could not be written stay buffered for the next flush.
    """
    deadline = time.monotonic() + patience
    delay = 0.1
    while True:
        try:
            current().flush()
            return True
        except Exception:
            if time.monotonic() + delay > deadline:
                logger.exception("Could not store job events for %.0f s; keeping them", patience)
                return False
            logger.warning("Could not store job events; retrying in %.1f s", delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def _default_sink() -> Sink:
    """For processes that only publish (web, beat, shells); workers install their own."""
    if layer_settings().record_synchronously:
        return DatabaseSink()
    url = stream_url()
    if url:
        return StreamSink(url, autoflush=True, stream=PUBLISHED_STREAM)
    return BufferedDatabaseSink()


@atexit.register
def _close_at_exit() -> None:
    if _sink is not None and _sink_pid == os.getpid():
        try:
            _sink.close()
        except Exception:
            logger.exception("Could not flush recorded job events at exit")


def record(event: JobEvent) -> None:
    """Hand an event to this process's sink."""
    current().emit_job(event)


def record_result(event: ResultEvent) -> None:
    current().emit_result(event)
