"""Malformed messages pushed raw into a queue: logged, kept, the worker keeps running."""

from __future__ import annotations

import base64
import json
import uuid

import pytest
import redis

from demo.tasks import add
from tasks.models import JobStatus
from tasks.runtime.redis_transport import MALFORMED_QUEUE
from tests.support.jobs import wait_for_job
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.django_db(transaction=True)


def envelope(body: bytes, headers: dict[str, str]) -> str:
    """A kombu Redis envelope, as a producer would push it."""
    return json.dumps(
        {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": {
                "delivery_tag": str(uuid.uuid4()),
                "body_encoding": "base64",
                "delivery_info": {"exchange": "default", "routing_key": "default"},
                "priority": 0,
            },
        }
    )


def test_malformed_messages_do_not_stop_the_worker_and_are_recorded(
    redis_live_worker: WorkerProcess, redis_client: redis.Redis
) -> None:
    not_json = f"this is not json {uuid.uuid4()}"
    bad_body_id, headerless_id = str(uuid.uuid4()), str(uuid.uuid4())
    redis_client.lpush("default", not_json)
    redis_client.lpush(
        "default", envelope(b"{not json", {"id": bad_body_id, "task": "tasks.demo.add"})
    )
    redis_client.lpush("default", envelope(b"[[1, 2], {}, {}]", {"id": headerless_id}))

    # The worker is still consuming: a normal job behind them runs.
    assert wait_for_job(add.delay(2, 2).id).result == 4
    assert redis_live_worker.is_alive()

    bad_body = wait_for_job(bad_body_id)
    assert bad_body.status == JobStatus.FAILURE
    assert "Malformed message: the body could not be decoded" in bad_body.error
    assert bad_body.name == "tasks.demo.add"
    headerless = wait_for_job(headerless_id)
    assert "Malformed message: it has no task name" in headerless.error
    # The entry that was not even an envelope is kept, unchanged, for inspection.
    assert not_json.encode() in redis_client.lrange(MALFORMED_QUEUE, 0, -1)


def test_an_undecodable_body_is_recorded_on_any_broker(live_worker: WorkerProcess) -> None:
    """The same fault through the broker's own client (RabbitMQ too): a message whose
    JSON body is broken, published by a faulty producer."""
    from celery import current_app
    from kombu import Exchange, Queue

    task_id = str(uuid.uuid4())
    queue = Queue("default", Exchange("default", type="direct"), routing_key="default")
    with current_app.connection_for_write() as connection:
        connection.Producer().publish(
            b"{not json",
            exchange=queue.exchange,
            routing_key="default",
            declare=[queue],
            content_type="application/json",
            content_encoding="utf-8",
            headers={"id": task_id, "task": "tasks.demo.add", "lang": "py"},
        )

    job = wait_for_job(task_id)
    assert job.status == JobStatus.FAILURE
    assert "Malformed message: the body could not be decoded" in job.error
    assert wait_for_job(add.delay(3, 4).id).result == 7
    assert live_worker.is_alive()
