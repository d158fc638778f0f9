"""queue_states(): depth and oldest message read from the real Redis broker (priority
sub-lists included), rates from the tallies, and no exception when the broker is away."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from celery import Celery
from django.utils import timezone
from kombu import Exchange, Queue

from tasks.models import QueuePause
from tasks.observations import JobTally, Period
from tasks.operations import QueueState, queue_states
from tasks.operations.queues import drain_seconds, latency
from tests.faults import count_run
from tests.support.broker import PRIORITY_SEPARATOR, clear_queue
from tests.support.brokers import (
    REDIS_TRANSPORT,
    Broker,
    point_app_at,
    rabbitmq_available,
    rabbitmq_vhost,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def queue(celery_app: Celery, redis_client: redis.Redis) -> Iterator[str]:
    """A configured queue that no test worker consumes."""
    name = f"states-{uuid.uuid4().hex[:8]}"
    previous = celery_app.conf.task_queues
    celery_app.conf.task_queues = (*previous, Queue(name, Exchange(name), routing_key=name))
    try:
        yield name
    finally:
        celery_app.conf.task_queues = previous
        clear_queue(redis_client, name)


def state_of(name: str) -> QueueState:
    return next(state for state in queue_states(max_age=0) if state.name == name)


def broker_depth(client: redis.Redis, name: str) -> int:
    lists = [name, *(f"{name}{PRIORITY_SEPARATOR}{n}" for n in range(1, 10))]
    return sum(int(client.llen(key)) for key in lists)


def test_depth_sums_every_priority_sub_queue_and_the_oldest_age_is_its_first_job(
    queue: str, redis_client: redis.Redis
) -> None:
    first = count_run.apply_async(("a",), queue=queue)
    time.sleep(1.2)
    for priority in (0, 3, 5, 9, 9):
        count_run.apply_async(("b",), queue=queue, priority=priority)
    assert len(redis_client.keys(f"{queue}*")) >= 3  # sub-lists in use

    state = state_of(queue)

    assert state.depth == broker_depth(redis_client, queue) == 6
    assert state.oldest_age_seconds is not None
    assert 1.0 <= state.oldest_age_seconds < 30
    assert state.latency_seconds == state.oldest_age_seconds
    assert not state.paused
    assert state.consumers == 0
    assert first.id  # its row's sent time is the age above


def test_a_paused_queue_is_listed_and_marked(queue: str) -> None:
    other = f"paused-{uuid.uuid4().hex[:8]}"
    QueuePause.objects.create(queue=other, paused_at=timezone.now(), paused_by="ops")

    state = state_of(other)

    assert state.paused
    assert state.consumers == 0
    assert state.depth == 0


def test_the_dead_letter_queue_comes_last_and_is_marked() -> None:
    states = queue_states(max_age=0)
    assert states[-1].name == "dead_letter"
    assert states[-1].dead_letter
    assert not any(state.dead_letter for state in states[:-1])


def test_rates_come_from_the_minute_tallies_and_give_the_time_to_drain(
    queue: str, redis_client: redis.Redis
) -> None:
    for i in range(30):
        count_run.apply_async((f"w{i}",), queue=queue)
    minute = timezone.now().replace(second=0, microsecond=0)
    JobTally.objects.create(
        period=Period.MINUTE,
        start=minute - timedelta(minutes=1),
        name="tests.faults.count_run",
        queue=queue,
        status="SUCCESS",
        count=120,
        wait_count=120,
        wait_ms_total=120 * 250,
    )

    state = state_of(queue)

    assert state.depth == 30
    assert state.out_per_minute > 0
    # A first reading: arrivals not measured yet (shown as in = out); the drain time
    # is at the rate jobs leave.
    assert state.in_per_minute == state.out_per_minute
    assert state.drain_seconds is not None
    assert state.drain_seconds == pytest.approx(30 / state.out_per_minute * 60, rel=0.02)


def test_an_unreachable_broker_gives_no_depth_and_no_exception(
    celery_app: Celery, queue: str, redis_server: object
) -> None:
    previous = Broker("redis", celery_app.conf.broker_url, REDIS_TRANSPORT)
    point_app_at(celery_app, Broker("redis", "redis://127.0.0.1:9/0", REDIS_TRANSPORT))
    try:
        started = time.monotonic()
        states = queue_states(max_age=0)
        elapsed = time.monotonic() - started
    finally:
        point_app_at(celery_app, previous)
    assert {state.depth for state in states} == {None}
    assert any(state.name == queue for state in states)
    assert elapsed < 2


def test_queue_states_is_fast(queue: str) -> None:
    for i in range(20):
        count_run.apply_async((f"f{i}",), queue=queue, priority=i % 10)
    queue_states(max_age=0)  # connections opened
    samples = []
    for _ in range(20):
        started = time.perf_counter()
        queue_states(max_age=0)
        samples.append(time.perf_counter() - started)
    samples.sort()
    assert samples[len(samples) // 2] < 0.05


def test_drain_and_latency_rules() -> None:
    assert drain_seconds(None, 0, 10) is None
    assert drain_seconds(0, 5, 0) == 0.0
    assert drain_seconds(100, 10, 60) == 120.0
    assert drain_seconds(100, 60, 60) is None
    assert drain_seconds(100, 80, 60) is None
    assert latency(12.5, 1000, 2) == 12.5
    assert latency(None, 1000, 2) == 0.5
    assert latency(None, 0, 0) is None


@pytest.mark.skipif(not rabbitmq_available(), reason="no RabbitMQ at 127.0.0.1:5672")
def test_rabbitmq_depth_comes_from_a_passive_declare(celery_app: Celery, queue: str) -> None:
    previous = Broker("redis", celery_app.conf.broker_url, REDIS_TRANSPORT)
    with rabbitmq_vhost() as rabbitmq:
        point_app_at(celery_app, rabbitmq)
        try:
            for i in range(4):
                count_run.apply_async((f"q{i}",), queue=queue, priority=i)
            state = state_of(queue)
            missing = next(s for s in queue_states(max_age=0) if s.name == "dead_letter")
        finally:
            point_app_at(celery_app, previous)
    assert state.depth == 4
    assert state.consumers == 0
    assert state.oldest_age_seconds is not None  # the oldest SENT row of the queue
    assert missing.depth == 0  # never declared: nothing waits
