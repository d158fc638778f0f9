"""/healthz answers without I/O; /readyz follows the real database, broker and workers:
503 when the last worker of a required queue stops, 200 when one is back, 503 naming
the broker when it is down; details only for an authorised caller."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.test import Client, override_settings

from dashboard.probes.readiness import (
    Check,
    backlog_check,
    drain_check,
    overall,
    required_queues,
    workers_check,
)
from devstack.redis_server import RedisServer
from tasks.observations import WorkerBeat
from tests.conftest import worker_env
from tests.dashboard.test_metrics import FakeQueueState
from tests.support.broker import use_broker
from tests.support.worker import WorkerProcess

TOKEN = "ready-token-0123456789abcdef"
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
QUEUE = "readyz-only"
# Only this queue is required, measured and consumed by the test's own worker: the
# session worker and whatever other tests left on the broker do not count.
ONLY_OUR_QUEUE = override_settings(
    TASKS_METRICS_TOKEN=TOKEN, TASKS_READY_QUEUES=[QUEUE], TASKS_QUEUES=[QUEUE]
)


def ready(client: Client | None = None, **headers: Any) -> tuple[int, dict[str, Any]]:
    response = (client or Client()).get("/readyz", **(headers or AUTH))
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    return response.status_code, response.json()


def eventually(
    condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"{what} not met within {timeout} s")


# --- /healthz ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_healthz_answers_ok_without_a_query_or_credentials(
    django_assert_num_queries: Any,
) -> None:
    with django_assert_num_queries(0):
        response = Client(REMOTE_ADDR="203.0.113.9").get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


# --- /readyz with real workers --------------------------------------------------------------


@pytest.fixture
def own_worker(
    transactional_db: None, celery_app: Celery, redis_server: RedisServer, output_dir: Path
) -> Iterator[Callable[[], WorkerProcess]]:
    """Start workers of the test's own queue; every one is stopped at the end."""
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        process = WorkerProcess(
            app=celery_app,
            env=worker_env(redis_server.url),
            log_path=output_dir / "logs" / f"worker-readyz-{len(started)}.log",
            queues=QUEUE,
            concurrency=1,
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


@ONLY_OUR_QUEUE
def test_readyz_turns_503_when_the_last_worker_stops_and_200_when_one_returns(
    own_worker: Callable[[], WorkerProcess],
) -> None:
    status, body = ready()
    assert status == 503
    assert body["failed"] == ["workers"]
    assert f"no live worker consumes {QUEUE}" in body["checks"][2]["detail"]

    first = own_worker()
    eventually(lambda: ready()[0] == 200, what="ready with a worker")
    status, body = ready()
    assert body["status"] == "ok"
    assert body["failed"] == []
    assert [check["name"] for check in body["checks"]] == [
        "database",
        "broker",
        "workers",
        "backlog",
        "drain",
    ]
    assert all(check["ok"] for check in body["checks"])

    first.stop()  # SIGTERM: a clean shutdown, its heartbeat row says so
    eventually(
        lambda: WorkerBeat.objects.filter(hostname=first.name, stopped_at__isnull=False).exists(),
        what="the worker's stopped_at",
    )
    status, body = ready()
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["failed"] == ["workers"]

    own_worker()
    eventually(lambda: ready()[0] == 200, what="ready again with a new worker")


@pytest.mark.django_db(transaction=True)
@ONLY_OUR_QUEUE
@override_settings(TASKS_READY_CHECK_TIMEOUT=1)
def test_readyz_names_the_broker_when_it_is_down_and_never_hangs(celery_app: Celery) -> None:
    with RedisServer() as server, use_broker(celery_app, server.url):
        _, body = ready()
        assert {c["name"]: c["ok"] for c in body["checks"]}["broker"] is True
        server.stop()
        started = time.monotonic()
        status, body = ready()
        elapsed = time.monotonic() - started
    assert status == 503
    assert "broker" in body["failed"]
    broker = next(c for c in body["checks"] if c["name"] == "broker")
    assert broker["ok"] is False
    assert broker["detail"]
    assert elapsed < 1 + 0.5 + 1.5  # the check's timeout, the probe's margin, slack


@pytest.mark.django_db(transaction=True)
@ONLY_OUR_QUEUE
def test_readyz_shows_its_checks_only_to_an_authorised_caller(
    read_only_client: Client,
) -> None:
    status, body = ready(Client(), HTTP_X_NOTHING="1")
    assert status == 503
    assert body == {"status": "unavailable"}
    _, body = ready(Client(), HTTP_AUTHORIZATION="Bearer wrong")
    assert body == {"status": "unavailable"}
    _, body = ready(read_only_client, HTTP_X_NOTHING="1")
    assert body["failed"] == ["workers"]
    _, body = ready()
    assert {check["name"] for check in body["checks"]} >= {"database", "broker", "workers"}


# --- the verdicts, pure ----------------------------------------------------------------------


def test_the_required_queues_default_to_the_apps_default_queue() -> None:
    assert required_queues((), "default") == ("default",)
    assert required_queues(("high", "low"), "default") == ("high", "low")


def test_every_required_queue_needs_a_live_worker() -> None:
    assert workers_check(["default", "high"], [["default"], ["high", "low"]]).ok
    missing = workers_check(["default", "high"], [["default", "low"]])
    assert missing == Check("workers", False, "no live worker consumes high")


def state(name: str, depth: int | None, drain: float | None, paused: bool = False) -> Any:
    return FakeQueueState(name, depth, None, 0.0, 0.0, None, drain, paused, 1)


def test_backlog_and_drain_have_their_thresholds_and_skip_the_dead_letter_queue() -> None:
    states = [state("default", 50, 30.0), state("dead_letter", 10**6, None)]
    assert backlog_check(states, 100).ok
    assert drain_check(states, 60).ok
    over = backlog_check([state("default", 101, 5.0)], 100)
    assert over == Check("backlog", False, "over 100: default holds 101")
    slow = drain_check([state("default", 500, 900.0)], 600)
    assert not slow.ok
    assert "default drains in 900 s" in slow.detail
    stuck = drain_check([state("low", 3, None)], 600)
    assert not stuck.ok
    assert "low is not draining" in stuck.detail
    assert drain_check([state("low", 3, None, paused=True)], 600).ok
    assert backlog_check([state("default", 10**9, None)], 0).ok  # 0: no limit
    assert drain_check([state("default", 10**9, None)], 0).ok
    assert backlog_check([state("default", None, None)], 100).ok  # the broker check fails
    assert backlog_check(None, 100).ok


def test_the_verdict_names_what_failed() -> None:
    checks = [Check("database", True, ""), Check("broker", False, "x"), Check("drain", False, "")]
    assert overall(checks) == (False, ["broker", "drain"])
    assert overall(checks[:1]) == (True, [])
