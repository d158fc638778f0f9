"""Pointing the test process's Celery app at a Redis broker, and reading what is queued."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from celery import Celery

from tests.support.brokers import REDIS_TRANSPORT, Broker, point_app_at

PRIORITY_SEPARATOR = "\x06\x16"  # kombu's Redis priority sub-lists: "<queue>\x06\x16<n>"


def _point_at(app: Celery, url: str, transport: str | None) -> None:
    point_app_at(app, Broker("redis" if transport else "rabbitmq", url, transport))


@contextmanager
def use_broker(app: Celery, url: str) -> Iterator[None]:
    """Publish from this process to the Redis at `url` for the duration (restored after).

    The session worker's fixture may have left the app on another broker (RabbitMQ).
    """
    previous = (app.conf.broker_url, app.conf.broker_transport)
    _point_at(app, url, REDIS_TRANSPORT)
    try:
        yield
    finally:
        _point_at(app, *previous)


def queued_messages(client: redis.Redis, queue: str) -> list[dict[str, Any]]:
    """Every message waiting in `queue`, its priority sub-lists included."""
    names = [queue, *(f"{queue}{PRIORITY_SEPARATOR}{n}" for n in range(1, 10))]
    messages: list[dict[str, Any]] = []
    for name in names:
        messages.extend(json.loads(raw) for raw in client.lrange(name, 0, -1))
    return messages


def clear_queue(client: redis.Redis, queue: str) -> None:
    client.delete(queue, *(f"{queue}{PRIORITY_SEPARATOR}{n}" for n in range(1, 10)))
