"""Queue depth and purge on RabbitMQ.

A passive `queue_declare` answers (message count, consumer count) without creating
the queue; for a queue that does not exist the broker closes the channel (404), which
here means "nothing waits". One connection for all the queues asked at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import current_app

from tasks.broker import Waiting

#: Seconds to connect before the broker counts as unreachable.
CONNECT_TIMEOUT = 1.0


def _connection() -> Any:
    connection = current_app.connection_for_read(connect_timeout=CONNECT_TIMEOUT)
    connection.ensure_connection(max_retries=1)
    return connection


def waiting(queues: Sequence[str]) -> dict[str, Waiting]:
    found: dict[str, Waiting] = {}
    with _connection() as connection:
        channel = connection.channel()
        try:
            for queue in queues:
                try:
                    _, depth, consumers = channel.queue_declare(queue=queue, passive=True)
                except connection.channel_errors:
                    # No such queue (404): the broker closed this channel.
                    found[queue] = Waiting(depth=0, consumers=0)
                    channel = connection.channel()
                    continue
                found[queue] = Waiting(depth=int(depth), consumers=int(consumers))
        finally:
            channel.close()
    return found


def purge(queue: str) -> tuple[int, list[str]]:
    """Take each waiting message and acknowledge it, so its task id is known.

    RabbitMQ's own `queue.purge` answers only a count; the job rows of the purged
    messages need their ids (tasks.operations.queues marks them REVOKED).
    """
    ids: list[str] = []
    count = 0
    with _connection() as connection:
        channel = connection.channel()
        try:
            try:
                channel.queue_declare(queue=queue, passive=True)
            except connection.channel_errors:
                return 0, []
            while True:
                message = channel.basic_get(queue=queue, no_ack=True)
                if message is None:
                    break
                count += 1
                found = (message.headers or {}).get("id") if message.headers else None
                if found:
                    ids.append(str(found))
        finally:
            channel.close()
    return count, ids
