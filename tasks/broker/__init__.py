"""What waits on the broker, asked of the broker itself: a queue's depth, its oldest
message, and taking every waiting message off it (purge).

The job rows say what was published; only the broker knows what still waits there (a
purge from the command line, an expired message, a producer that records nothing).
Two brokers, two ways of asking:

- Redis (tasks.broker.redis_lists): kombu keeps a queue as Redis lists, one per priority
  step ("q", "q\\x06\\x163", "q\\x06\\x166", "q\\x06\\x169" with the default steps);
  producers LPUSH, workers BRPOP, so the right end of each list is its oldest
  message. Every queue's lengths and oldest entries come back in one pipeline.
- RabbitMQ (tasks.broker.rabbitmq): a passive `queue_declare` answers the message and
  consumer counts without creating anything. A message cannot be looked at without
  taking it, so the oldest is found from the job rows instead.

Callers get `None` rather than an exception when the broker does not answer: a page or
a health check says "broker unreachable" instead of failing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from celery import current_app

from tasks.celery_defaults import is_amqp, is_redis

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Waiting:
    """What the broker holds for one queue."""

    depth: int
    #: Task ids of the oldest message of each priority sub-queue (Redis); () elsewhere.
    oldest_ids: tuple[str, ...] = ()
    #: Consumers the broker counts (RabbitMQ); None where it keeps no such count (Redis).
    consumers: int | None = None


def broker_url() -> str:
    url = current_app.conf.broker_url or ""
    if isinstance(url, list | tuple):  # failover URLs: the first is the one in use
        url = url[0] if url else ""
    return str(url).split(";", 1)[0]


def kind() -> str:
    """Which broker: "redis", "rabbitmq", or "other" (an in-memory or SQS broker: no depth)."""
    url = broker_url()
    if is_redis(url) or url.startswith("unix://"):
        return "redis"
    if is_amqp(url):
        return "rabbitmq"
    return "other"


def waiting(queues: Sequence[str]) -> dict[str, Waiting] | None:
    """Each queue's waiting messages, or None when the broker cannot be asked."""
    try:
        if kind() == "redis":
            from tasks.broker import redis_lists

            return redis_lists.waiting(broker_url(), queues)
        if kind() == "rabbitmq":
            from tasks.broker import rabbitmq

            return rabbitmq.waiting(queues)
    except Exception as error:  # any transport's connection error: the broker is away
        logger.warning("Could not read queue depths from the broker: %s", error)
    return None


def purge(queue: str) -> tuple[int, list[str]]:
    """Delete every message waiting in `queue`: (how many, the task ids among them).

    Raises the transport's error when the broker is unreachable (an operator's action
    must fail loudly, unlike a read).
    """
    if kind() == "redis":
        from tasks.broker import redis_lists

        return redis_lists.purge(broker_url(), queue)
    if kind() == "rabbitmq":
        from tasks.broker import rabbitmq

        return rabbitmq.purge(queue)
    raise NotImplementedError(f"Purging is not supported on this broker ({kind()}).")
