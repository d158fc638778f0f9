"""Appending to the event stream without waiting for each reply.

A pool child sends its task's events when the task ends, before Celery acknowledges
the message. Waiting for Redis's reply there put a network round trip into every task
(measured: the pool processes were the drain's bottleneck, not the CPU). The command
is written to the connection instead, and its reply read just before the next write
(by then it has long arrived) or when the sink closes. Once written, the kernel
delivers the command even if the process is killed next; a command Redis refused, or
one whose connection broke before its reply was read, is sent again, synchronously.
Sending one twice is harmless: the recording service applies events idempotently.

With `marker_key`, a GET of that key rides in the same write as the XADD (no extra
round trip) and its reply is read with the XADD's: `readings` collects (when asked,
value) for the sink (tasks.record.sinks.StreamSink), which replays recent entries when
the broker's marker changed, i.e. the stream was lost with the broker's data.
"""

from __future__ import annotations

import logging
import time
from collections import deque

import redis

logger = logging.getLogger(__name__)

_LOST = (redis.ConnectionError, redis.TimeoutError, OSError)


class StreamWriter:
    def __init__(self, client: redis.Redis, stream: str, marker_key: str | None = None) -> None:
        self._client = client
        self._stream = stream
        self.marker_key = marker_key
        self._connection: redis.connection.Connection | None = None
        # (payload, when the marker's GET was sent with it, or None without one)
        self._unconfirmed: deque[tuple[str, float | None]] = deque()
        #: (monotonic time the GET was sent, the marker's value), oldest first.
        self.readings: list[tuple[float, bytes | None]] = []

    def send(self, payload: str, ask_marker: bool = True) -> None:
        """Append one entry; raises only if Redis cannot be reached at all."""
        self.confirm()
        asked = self.marker_key is not None and ask_marker
        try:
            connection = self._checked_out()
            commands: list[tuple[str, ...]] = [("XADD", self._stream, "*", "e", payload)]
            if asked:
                commands.append(("GET", self.marker_key or ""))
            connection.send_packed_command(connection.pack_commands(commands))
        except _LOST:
            self._drop_connection()
            self._client.xadd(self._stream, {"e": payload})
            return
        self._unconfirmed.append((payload, time.monotonic() if asked else None))

    def confirm(self) -> None:
        """Read the replies of earlier sends; send again what did not land."""
        while self._unconfirmed:
            payload, asked_at = self._unconfirmed[0]
            connection = self._connection
            try:
                if connection is None:
                    raise redis.ConnectionError("connection dropped before its reply")
                connection.read_response()
            except redis.ResponseError as exc:
                logger.warning("Redis refused an event entry (%s); sending it again", exc)
                self._client.xadd(self._stream, {"e": payload})
            except (*_LOST, AttributeError):
                # AttributeError: redis-py's reader after its socket was closed.
                self._drop_connection()
                self._client.xadd(self._stream, {"e": payload})
                asked_at = None  # the GET's reply went with the connection
            if asked_at is not None:
                self._read_marker(asked_at)
            self._unconfirmed.popleft()

    def _read_marker(self, asked_at: float) -> None:
        connection = self._connection
        try:
            if connection is None:
                return
            value = connection.read_response()
        except redis.ResponseError:
            return
        except (*_LOST, AttributeError):
            self._drop_connection()
            return
        self.readings.append((asked_at, value if isinstance(value, bytes | None) else None))

    def ask_marker(self) -> None:
        """Read the marker now (one round trip): for a sink with nothing to send."""
        if self.marker_key is None:
            return
        self.confirm()
        asked_at = time.monotonic()
        value = self._client.get(self.marker_key)
        self.readings.append((asked_at, value if isinstance(value, bytes | None) else None))

    def close(self) -> None:
        try:
            self.confirm()
        finally:
            self._drop_connection()

    def _checked_out(self) -> redis.connection.Connection:
        if self._connection is None:
            self._connection = self._client.connection_pool.get_connection()
        return self._connection

    def _drop_connection(self) -> None:
        if self._connection is not None:
            self._connection.disconnect()
            self._client.connection_pool.release(self._connection)
            self._connection = None
