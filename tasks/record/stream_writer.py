"""Appending to the event stream without waiting for each reply.

A pool child sends its task's events when the task ends, before Celery acknowledges
the message. Waiting for Redis's reply there put a network round trip into every task
(measured: the pool processes were the drain's bottleneck, not the CPU). The command
is written to the connection instead, and its reply read just before the next write
(by then it has long arrived) or when the sink closes. Once written, the kernel
delivers the command even if the process is killed next; a command Redis refused, or
one whose connection broke before its reply was read, is sent again, synchronously.
Sending one twice is harmless: the recording service applies events idempotently.
"""

from __future__ import annotations

import logging
from collections import deque

import redis

logger = logging.getLogger(__name__)

_LOST = (redis.ConnectionError, redis.TimeoutError, OSError)


class StreamWriter:
    def __init__(self, client: redis.Redis, stream: str) -> None:
        self._client = client
        self._stream = stream
        self._connection: redis.connection.Connection | None = None
        self._unconfirmed: deque[str] = deque()

    def send(self, payload: str) -> None:
        """Append one entry; raises only if Redis cannot be reached at all."""
        self.confirm()
        try:
            self._checked_out().send_command("XADD", self._stream, "*", "e", payload)
        except _LOST:
            self._drop_connection()
            self._client.xadd(self._stream, {"e": payload})
            return
        self._unconfirmed.append(payload)

    def confirm(self) -> None:
        """Read the replies of earlier sends; send again what did not land."""
        while self._unconfirmed:
            connection = self._connection
            try:
                if connection is None:
                    raise redis.ConnectionError("connection dropped before its reply")
                connection.read_response()
            except redis.ResponseError as exc:
                logger.warning("Redis refused an event entry (%s); sending it again", exc)
                self._client.xadd(self._stream, {"e": self._unconfirmed[0]})
            except (*_LOST, AttributeError):
                # AttributeError: redis-py's reader after its socket was closed.
                self._drop_connection()
                self._client.xadd(self._stream, {"e": self._unconfirmed[0]})
            self._unconfirmed.popleft()

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
