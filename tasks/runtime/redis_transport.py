"""kombu's Redis transport, made to survive a malformed message in a queue.

kombu keeps each message as a JSON envelope in a Redis list and decodes it in the
worker's event loop. An entry that is not such an envelope (anything pushed to the list
by hand or by a broken producer) raises out of that loop, and the worker exits with
"Unrecoverable error" -- and dies again on the same entry after every restart.

This transport moves such an entry, unchanged, to the `dead_letter.malformed` list and
logs what it was, so nothing is lost and the worker keeps consuming. Messages whose
envelope is fine but whose body or headers are not a task go through Celery's own
handling (tasks.malformed records what was wrong on the job's row where an id can be
read). Selected by CELERY_BROKER_TRANSPORT when the broker is Redis.

It also keeps one redis-py client per channel for the synchronous commands (every
publish, every acknowledgement). kombu builds a new `redis.Redis` for each of them,
and redis-py's constructor fills a table of ~170 response callbacks every time: about
a fifth of the CPU of a publish in perf-baseline.md's profile (`_create_client`). The
client holds no connection of its own (it borrows from the channel's pool per
command), so one shared client behaves exactly like a new one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from queue import Empty
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

logger = logging.getLogger(__name__)

MALFORMED_QUEUE = "dead_letter.malformed"
_PREVIEW = 200  # characters of a malformed entry shown in the log
_ENVELOPE_KEYS = ("body", "properties")


class QoS(kombu_redis.QoS):
    """kombu's QoS, whose close, acks and rejects do not kill the worker when the
    connection is gone.

    On a lost connection Celery closes the channel, and kombu restores the messages it
    had delivered and not acknowledged (the prefetch) by building a client from the
    connection, which is gone by then: AttributeError, "Unrecoverable error", the worker
    exits and its running jobs with it (kombu 5.7, Redis restarted under a busy worker).
    Those messages cannot be restored to a broker that is unreachable anyway: they stay
    in its `unacked` hash, restored after the visibility timeout if the broker kept its
    data, and published again by the layer if it lost it (tasks.runtime.broker_recovery).
    """

    def restore_unacked(self, client: Any = None) -> None:
        try:
            super().restore_unacked(client)
        except AttributeError as exc:
            delivered = self._delivered
            logger.warning(
                "Could not restore %s unacknowledged message(s): the broker connection "
                "is gone (%s); the broker restores them after the visibility timeout",
                len(delivered) if delivered is not None else 0,
                exc,
            )
            if delivered is not None:
                delivered.clear()

    def ack(self, delivery_tag: Any) -> None:
        # A job that started before the connection was lost ends after it: its delivery
        # tag died with that channel, whose client can no longer be built (the same
        # AttributeError, raised out of the worker's loop). It cannot be acknowledged:
        # its entry stays in the broker's `unacked` hash (restored and run again after
        # the visibility timeout if the broker kept its data: at least once).
        try:
            super().ack(delivery_tag)
        except AttributeError as exc:
            logger.warning(
                "Could not acknowledge a message of a closed channel (%s): the connection "
                "it came on is gone",
                exc,
            )

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        try:
            super().reject(delivery_tag, requeue=requeue)
        except AttributeError as exc:
            logger.warning(
                "Could not reject a message of a closed channel (%s): the connection "
                "it came on is gone",
                exc,
            )


class Channel(kombu_redis.Channel):
    QoS = QoS
    _sync_client: Any = None
    _sync_client_pool: Any = None
    # kombu's Redis Channel has these; celery-types' stub of it leaves them out.
    connection_errors: tuple[type[BaseException], ...]
    _queue_cycle: Any
    _flush_brpop_reauth: Callable[[], None]
    _q_for_pri: Callable[[str, int], str]
    _maybe_update_queues_expire: Callable[[Any, str], None]

    def _create_client(self, asynchronous: bool = False) -> Any:
        """kombu's client, built once per connection pool for synchronous use."""
        # The ignore[misc] below: kombu's Channel has _create_client; the stub has not.
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[misc]
        pool = self.pool
        if self._sync_client is None or self._sync_client_pool is not pool:
            # A reconnect replaces the pool (kombu's _disconnect_pools): rebuild then.
            self._sync_client = super()._create_client(asynchronous=False)  # type: ignore[misc]
            self._sync_client_pool = pool
        return self._sync_client

    def _brpop_read(self, **options: Any) -> bool:
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if not dest__item:
                raise Empty()
            dest, item = dest__item
            dest = bytes_to_str(dest).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            envelope = self._envelope_or_park(item, dest)
            if envelope is not None:
                self.connection._deliver(envelope, dest)
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        # `timeout`: the stubbed base's signature; kombu's own Redis _get is never given one.
        with self.conn_or_acquire() as client:
            for pri in self.priority_steps:
                item = client.rpop(self._q_for_pri(queue, pri))
                if item:
                    self._maybe_update_queues_expire(client, queue)
                    envelope = self._envelope_or_park(item, queue)
                    if envelope is not None:
                        return envelope
            self._maybe_update_queues_expire(client, queue)
            raise Empty()

    def _envelope_or_park(self, item: bytes, queue: str) -> dict[str, Any] | None:
        text = bytes_to_str(item)
        try:
            envelope = loads(text)
        except ValueError as exc:
            problem = f"not JSON ({exc})"
        else:
            if isinstance(envelope, dict) and all(key in envelope for key in _ENVELOPE_KEYS):
                return envelope
            problem = "JSON, but not a kombu message envelope"
        logger.error(
            "Malformed message in queue %r (%s), moved to %r: %r",
            queue,
            problem,
            MALFORMED_QUEUE,
            text[:_PREVIEW],
        )
        with self.conn_or_acquire() as client:
            client.lpush(MALFORMED_QUEUE, item)
        return None


class Transport(kombu_redis.Transport):
    Channel = Channel
