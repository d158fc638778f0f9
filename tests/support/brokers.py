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

from kombu import pools

RABBITMQ_HOST, RABBITMQ_PORT = "127.0.0.1", 5672
REDIS_TRANSPORT = "tasks.runtime.redis_transport:Transport"


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
        # What README tells operators to run: failed messages the workers reject move
        # to the dead_letter exchange (a policy, so queue arguments never clash).
        _rabbitmqctl(
            "set_policy",
            "-p",
            vhost,
            "--apply-to",
            "queues",
            "task-layer-dead-letters",
            "^(?!dead_letter).*",
            '{"dead-letter-exchange":"dead_letter","dead-letter-routing-key":"dead_letter"}',
        )
        yield Broker(
            "rabbitmq", f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}/{vhost}", None
        )
    finally:
        _rabbitmqctl("delete_vhost", vhost)


def point_app_at(app: Any, broker: Broker) -> None:
    """Make this process publish to `broker` (a no-op when it already does).

    kombu keeps one connection and producer pool per broker URL in a global registry,
    and a closed pool stays there ("Acquire on closed pool" on the next use of that
    URL): the registries start empty instead.
    """
    if app.conf.broker_url == broker.url and app.conf.broker_transport == broker.transport:
        return
    app.conf.broker_url = broker.url
    app.conf.broker_transport = broker.transport
    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None
