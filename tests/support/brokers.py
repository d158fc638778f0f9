"""The brokers the integration tests run on: the private Redis, and RabbitMQ when one answers.

RabbitMQ is shared by everything on the machine, so a test session gets a virtual host
of its own (created with rabbitmqctl, deleted at the end): no queue, exchange or
message of anybody else's is seen, and queue arguments (the dead-letter exchange)
cannot clash with queues someone declared differently.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

RABBITMQ_HOST, RABBITMQ_PORT = "127.0.0.1", 5672
REDIS_TRANSPORT = "tasks.redis_transport:Transport"


@dataclass(frozen=True)
class Broker:
    name: str  # "redis" or "rabbitmq"
    url: str
    transport: str | None  # CELERY_BROKER_TRANSPORT for this URL

    @property
    def is_redis(self) -> bool:
        return self.name == "redis"


def rabbitmq_available() -> bool:
    if shutil.which("rabbitmqctl") is None:
        return False
    with (
        contextlib.suppress(OSError),
        socket.create_connection((RABBITMQ_HOST, RABBITMQ_PORT), timeout=1),
    ):
        return True
    return False


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def rabbitmq_vhost() -> Iterator[Broker]:
    vhost = f"tests-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield Broker(
            "rabbitmq", f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}/{vhost}", None
        )
    finally:
        _rabbitmqctl("delete_vhost", vhost)


def point_app_at(app: Any, broker: Broker) -> None:
    """Make this process publish to `broker` (pools opened for another broker are closed)."""
    app.conf.broker_url = broker.url
    app.conf.broker_transport = broker.transport
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None
