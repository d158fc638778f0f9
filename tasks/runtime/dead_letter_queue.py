"""The broker's `dead_letter` queue: where failed messages are parked.

On RabbitMQ with the dead-letter policy installed (README: `rabbitmqctl set_policy ...`,
then TASKS_RABBITMQ_DEAD_LETTER_POLICY=1), a message the worker rejects without
requeueing -- a final failure of a task that dead-letters, an unknown task -- is moved
to `dead_letter` by the broker itself, through the `dead_letter` exchange. A policy
rather than queue arguments, because a queue declared with arguments refuses every
producer that declares it without them (plain Celery apps, other services). Elsewhere
-- Redis has no dead-lettering, a rejected message is simply dropped -- `park`
publishes a copy there: a complete Celery message, which a worker started with
`-Q dead_letter` could run.

Nothing consumes the queue by default; operators replay or purge through
tasks.runtime.dead_lettering, which also removes the broker's copy (`remove`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from celery import current_app
from kombu import Exchange, Queue

from tasks.conf import layer_settings

QUEUE = "dead_letter"
EXCHANGE = "dead_letter"


def is_amqp(broker_url: str | None = None) -> bool:
    url = str(broker_url or current_app.conf.broker_url or "")
    return url.startswith(("amqp://", "amqps://", "pyamqp://", "librabbitmq://"))


def dead_letter_queue() -> Queue:
    return Queue(QUEUE, Exchange(EXCHANGE, type="direct"), routing_key=QUEUE)


def broker_dead_letters() -> bool:
    """Whether the broker itself moves rejected messages to `dead_letter` (RabbitMQ policy)."""
    return is_amqp() and layer_settings().rabbitmq_dead_letter_policy


def park(
    task_id: str, name: str, args: list[Any], kwargs: dict[str, Any], message: Mapping[str, Any]
) -> None:
    """Put a copy of a failed message on the dead-letter queue.

    Needed on Redis, which has no dead-lettering, and for messages that were
    acknowledged rather than rejected.
    """
    app = current_app
    headers = dict(message.get("headers") or {})
    # The ignore[arg-type] below: Celery takes any sequence of args; the stub says tuple.
    task_message = app.amqp.as_task_v2(
        task_id,
        name,
        args,  # type: ignore[arg-type]
        kwargs,
        retries=message.get("retries") or 0,
        root_id=headers.pop("root_id", None),
        parent_id=headers.pop("parent_id", None),
        group_id=headers.pop("group", None),
    )
    task_message.headers.update(headers)
    task_message.headers["x-original-queue"] = message.get("queue") or ""
    queue = dead_letter_queue()
    with app.producer_or_acquire() as producer:
        producer.publish(
            task_message.body,
            exchange=queue.exchange,
            routing_key=QUEUE,
            headers=task_message.headers,
            serializer="json",
            declare=[queue],
            retry=True,
            retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
            **task_message.properties,
        )


def declare() -> None:
    """Make sure the queue exists (RabbitMQ drops what it dead-letters to nowhere)."""
    with current_app.connection_for_write() as connection:
        dead_letter_queue()(connection.default_channel).declare()


def peek(limit: int = 1000) -> list[str]:
    """Task ids of the messages waiting in the dead-letter queue, oldest first."""
    with current_app.connection_for_write() as connection:
        if is_amqp(connection.as_uri()):
            return _peek_amqp(connection, limit)
        # kombu's Redis channel (StdChannel, in the stubs, has no client).
        channel: Any = connection.default_channel
        client = channel.client
        ids = []
        for raw in reversed(client.lrange(QUEUE, -limit, -1)):
            try:
                ids.append((json.loads(raw).get("headers") or {}).get("id"))
            except (ValueError, AttributeError):
                continue
        return [task_id for task_id in ids if task_id]


def _peek_amqp(connection: Any, limit: int) -> list[str]:
    # Read without acknowledging; closing the channel gives every message back.
    channel = connection.channel()
    ids: list[str | None] = []
    try:
        queue = dead_letter_queue()(channel)
        queue.declare()
        while len(ids) < limit:
            message = queue.get(no_ack=False)
            if message is None:
                break
            ids.append((message.headers or {}).get("id"))
    finally:
        channel.close()
    return [task_id for task_id in ids if task_id]


def remove(task_ids: Iterable[str]) -> int:
    """Take these jobs' messages off the dead-letter queue; returns how many were found."""
    wanted = set(task_ids)
    if not wanted:
        return 0
    with current_app.connection_for_write() as connection:
        if is_amqp(connection.as_uri()):
            return _remove_amqp(connection, wanted)
        return _remove_redis(connection, wanted)


def _remove_redis(connection: Any, wanted: set[str]) -> int:
    # kombu's Redis transport keeps a queue as a list of JSON envelopes.
    client = connection.default_channel.client
    removed = 0
    for raw in client.lrange(QUEUE, 0, -1):
        try:
            task_id = (json.loads(raw).get("headers") or {}).get("id")
        except (ValueError, AttributeError):
            continue
        if task_id in wanted:
            removed += client.lrem(QUEUE, 1, raw)
    return removed


def _remove_amqp(connection: Any, wanted: set[str]) -> int:
    # RabbitMQ cannot delete one message: read them all, ack the wanted, and give the
    # rest back when the channel closes.
    channel = connection.channel()
    removed = 0
    try:
        queue = dead_letter_queue()(channel)
        queue.declare()
        while True:
            message = queue.get(no_ack=False)
            if message is None:
                break
            if (message.headers or {}).get("id") in wanted:
                message.ack()
                removed += 1
    finally:
        channel.close()
    return removed
