"""Shared fixtures: a private Redis server, the real test database, real workers.

Nothing here touches the machine's shared Redis on 6379: the session starts its own
redis-server on a free port and stops it at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from devstack.redis_server import RedisServer
from tests.support.brokers import (
    REDIS_TRANSPORT,
    Broker,
    point_app_at,
    rabbitmq_available,
    rabbitmq_vhost,
)
from tests.support.database import database_url
from tests.support.worker import PROJECT_ROOT, WorkerProcess

# Playwright runs an event loop in the test thread; Django refuses ORM calls there
# unless told that this (test-only) thread is safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

OUTPUT_DIR = Path(os.environ.get("TEST_OUTPUT_DIR", PROJECT_ROOT / "test-output"))
UNIT_DIR = Path(__file__).resolve().parent / "unit"


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    return OUTPUT_DIR


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def celery_app(redis_server: RedisServer) -> Celery:
    """The project's app, pointed at the private Redis before anything publishes."""
    from project.celery import app

    app.conf.broker_url = redis_server.url
    app.conf.broker_transport = REDIS_TRANSPORT
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        "visibility_timeout": 3600,
    }
    return app


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


def worker_env(broker_url: str, side_redis_url: str | None = None) -> dict[str, str]:
    from django.db import connection

    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(connection.settings_dict),
        CELERY_BROKER_URL=broker_url,
        REDIS_URL=broker_url,
        DJANGO_SETTINGS_MODULE="project.settings",
        PYTHONUNBUFFERED="1",
        # Fault-injection tasks exist only for the tests' workers.
        CELERY_IMPORTS="tests.faults",
        # Where test tasks leave side effects for the test to read (any broker).
        TESTS_SIDE_REDIS_URL=side_redis_url or broker_url,
    )
    return env


BROKERS = [
    "redis",
    pytest.param(
        "rabbitmq",
        marks=pytest.mark.skipif(
            not rabbitmq_available(), reason="no RabbitMQ at 127.0.0.1:5672 (or no rabbitmqctl)"
        ),
    ),
]


@pytest.fixture(scope="session", params=BROKERS)
def broker(request: pytest.FixtureRequest, redis_server: RedisServer) -> Iterator[Broker]:
    """The broker of the session worker: each integration test runs once per broker."""
    if request.param == "redis":
        yield Broker("redis", redis_server.url, REDIS_TRANSPORT)
        return
    with rabbitmq_vhost() as rabbitmq:
        yield rabbitmq


@pytest.fixture(scope="session")
def worker(
    django_db_setup: None,
    django_db_blocker: object,
    broker: Broker,
    redis_server: RedisServer,
    celery_app: Celery,
    output_dir: Path,
) -> Iterator[WorkerProcess]:
    """One prefork worker (-c 2) per broker, on the test database."""
    point_app_at(celery_app, broker)
    env = worker_env(broker.url, side_redis_url=redis_server.url)
    if not broker.is_redis:
        env["TASKS_RABBITMQ_DEAD_LETTER_POLICY"] = "1"  # the vhost has the policy
    process = WorkerProcess(
        app=celery_app,
        env=env,
        log_path=output_dir / "logs" / f"worker-session-{broker.name}.log",
    )
    try:
        process.start()
        yield process
    finally:
        process.stop()
        point_app_at(celery_app, Broker("redis", redis_server.url, REDIS_TRANSPORT))


@pytest.fixture
def live_worker(
    worker: WorkerProcess, broker: Broker, celery_app: Celery, transactional_db: None
) -> WorkerProcess:
    """The session worker, for a test whose rows must be committed for it to see them."""
    assert worker.is_alive(), f"the session worker died; see {worker.log_path}"
    point_app_at(celery_app, broker)
    return worker


def is_unit_test(item: pytest.Item) -> bool:
    """Tests under tests/unit/ need no Redis, database or worker: nothing is started."""
    return UNIT_DIR in Path(str(item.path)).parents


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if is_unit_test(item):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(autouse=True)
def _publish_to_the_tests_broker(request: pytest.FixtureRequest) -> None:
    """An integration test without the session worker publishes to the private Redis,
    whatever broker the session worker of the current parameter uses. A unit test
    starts nothing (and fails if it publishes: the app has no broker then)."""
    if is_unit_test(request.node):
        return
    redis_server: RedisServer = request.getfixturevalue("redis_server")
    celery_app: Celery = request.getfixturevalue("celery_app")
    if "worker" not in request.fixturenames:
        point_app_at(celery_app, Broker("redis", redis_server.url, REDIS_TRANSPORT))


@pytest.fixture
def redis_live_worker(live_worker: WorkerProcess, broker: Broker) -> WorkerProcess:
    """The session worker, for a test about Redis itself (its lists, its visibility timeout)."""
    if not broker.is_redis:
        pytest.skip("about the Redis transport")
    return live_worker


@pytest.fixture(autouse=True)
def _usable_database_connection() -> None:
    """A fault test may have cut this process's database connection (PostgreSQL
    restarted): start every test on a live one."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and not conn.is_usable():
            conn.close()
