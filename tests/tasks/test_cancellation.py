"""Cancellation, end to end: real Redis, the real database, real worker processes.

Each test that runs jobs uses its own queue and its own `-c 1` worker, so "behind a
busy worker" means exactly that, and restarts do not disturb the session worker. A
side effect in Redis (`faults:ran:<key>`) proves whether a job body ran.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from celery.result import AsyncResult
from django.utils import timezone

from devstack.redis_server import RedisServer
from tasks.models import Job, JobStatus, OutboxMessage
from tasks.operations import cancellation as cancel_module
from tasks.operations.cancellation import Outcome, cancel, cancel_many
from tasks.record import translate
from tasks.record.service import record_now
from tasks.runtime import cancellation
from tests.conftest import worker_env
from tests.faults import cancellable_loop, mark_ran, sleep_ignoring_cancel, slow_noop
from tests.support.jobs import wait_for_job
from tests.support.worker import WorkerProcess

REVOKED = {JobStatus.REVOKED}
FINISHED = {JobStatus.SUCCESS, JobStatus.FAILURE, JobStatus.REVOKED}


def _key() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def make_worker(
    transactional_db: None, redis_server: RedisServer, celery_app: Celery, output_dir: Path
) -> Iterator[object]:
    """Starts `-c 1` workers on a queue of their own; stops them all at the end."""
    started: list[WorkerProcess] = []

    def start(queue: str) -> WorkerProcess:
        process = WorkerProcess(
            app=celery_app,
            env=worker_env(redis_server.url),
            log_path=output_dir / "logs" / f"worker-cancel-{queue}-{len(started)}.log",
            queues=queue,
            concurrency=1,
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def queue() -> str:
    return f"cancel-{_key()}"


def _ran(client: redis.Redis, key: str) -> int:
    return int(client.get(f"faults:ran:{key}") or 0)


def _wait_for_key(client: redis.Redis, name: str, timeout: float = 30.0) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = client.get(name)
        if value is not None:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{name} not set in {timeout}s")


def _acknowledged(client: redis.Redis, task_id: str, timeout: float = 5.0) -> bool:
    """The message left kombu's `unacked` hash: it will not be delivered again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(task_id.encode() in value for value in client.hvals("unacked")):
            return True
        time.sleep(0.1)
    return False


def test_queued_job_behind_a_busy_worker_is_revoked_without_running(
    make_worker, queue: str, redis_client: redis.Redis
) -> None:
    worker = make_worker(queue)
    key = _key()
    blocker = sleep_ignoring_cancel.apply_async((f"{key}-blocker", 3.0), queue=queue)
    _wait_for_key(redis_client, f"faults:cancel-pid:{key}-blocker")
    target = mark_ran.apply_async((key,), queue=queue)
    wait_for_job(target.id, {JobStatus.SENT}, timeout=10)

    outcome = cancel(target.id, requested_by="test")

    assert outcome.outcome == Outcome.NOT_STARTED
    assert Job.objects.get(task_id=target.id).cancel_requested_at is not None
    job = wait_for_job(target.id, FINISHED, timeout=30)
    assert job.status == JobStatus.REVOKED
    assert wait_for_job(blocker.id, FINISHED, timeout=30).status == JobStatus.SUCCESS
    assert _ran(redis_client, key) == 0
    assert AsyncResult(target.id).state == "REVOKED"
    assert worker.is_alive()


def test_countdown_job_cancelled_while_its_worker_is_down_is_revoked_by_a_fresh_worker(
    make_worker, queue: str, redis_client: redis.Redis
) -> None:
    first = make_worker(queue)
    key = _key()
    result = mark_ran.apply_async((key,), queue=queue, countdown=30)
    wait_for_job(result.id, {JobStatus.RECEIVED}, timeout=30)
    # A warm shutdown gives the held (unacknowledged) message back to the queue; no
    # worker hears the revoke broadcast that follows.
    first.stop()

    assert cancel(result.id).outcome == Outcome.NOT_STARTED

    make_worker(queue)
    ready_at = time.monotonic()
    job = wait_for_job(result.id, FINISHED, timeout=40)
    # Discarded on delivery (the ids are loaded at start), not at the refresh or the ETA.
    assert job.status == JobStatus.REVOKED
    assert time.monotonic() - ready_at < 5
    assert _ran(redis_client, key) == 0


def test_delayed_job_held_by_a_live_worker_is_revoked_at_once_not_at_its_eta(
    make_worker, queue: str, redis_client: redis.Redis
) -> None:
    make_worker(queue)
    key = _key()
    result = mark_ran.apply_async((key,), queue=queue, countdown=120)
    wait_for_job(result.id, {JobStatus.RECEIVED}, timeout=30)

    cancel(result.id)

    job = wait_for_job(result.id, FINISHED, timeout=10)
    assert job.status == JobStatus.REVOKED
    assert _ran(redis_client, key) == 0
    assert _acknowledged(redis_client, result.id)


@pytest.mark.parametrize("then", ["return", "raise"])
def test_running_cooperative_job_ends_revoked_within_a_second_of_cancel(
    make_worker, queue: str, redis_client: redis.Redis, then: str
) -> None:
    worker = make_worker(queue)
    key = _key()
    result = cancellable_loop.apply_async((key, 60, then), queue=queue)
    _wait_for_key(redis_client, f"faults:loop-started:{key}")
    wait_for_job(result.id, {JobStatus.STARTED}, timeout=10)

    cancelled_at = time.time()
    outcome = cancel(result.id)

    assert outcome.outcome == Outcome.RUNNING
    seen_at = float(_wait_for_key(redis_client, f"faults:cancel-seen:{key}", timeout=5))
    assert seen_at - cancelled_at < 1.0
    job = wait_for_job(result.id, FINISHED, timeout=5)
    assert job.status == JobStatus.REVOKED
    assert time.time() - cancelled_at < 3.0
    assert "cancellation check" in job.error
    assert AsyncResult(result.id).state == "REVOKED"
    # Acknowledged, not redelivered: nothing left unacked, it ran once, the worker is free.
    assert _acknowledged(redis_client, result.id)
    follow_up = mark_ran.apply_async((key,), queue=queue)
    assert wait_for_job(follow_up.id, FINISHED, timeout=30).status == JobStatus.SUCCESS
    assert int(redis_client.get(f"faults:runs:{key}")) == 1
    assert worker.is_alive()


def test_hard_cancel_kills_a_non_cooperative_job_and_the_worker_keeps_serving(
    make_worker, queue: str, redis_client: redis.Redis
) -> None:
    worker = make_worker(queue)
    key = _key()
    result = sleep_ignoring_cancel.apply_async((key, 60), queue=queue)
    pid = int(_wait_for_key(redis_client, f"faults:cancel-pid:{key}"))

    outcome = cancel(result.id, terminate=True)

    assert outcome.outcome == Outcome.TERMINATED, outcome
    job = wait_for_job(result.id, FINISHED, timeout=10)
    assert job.status == JobStatus.REVOKED
    assert "Terminated" in job.error
    assert AsyncResult(result.id).state == "REVOKED"
    deadline = time.monotonic() + 10
    while _process_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _process_exists(pid)
    assert worker.is_alive()
    follow_up = mark_ran.apply_async((key,), queue=queue)
    assert wait_for_job(follow_up.id, FINISHED, timeout=30).status == JobStatus.SUCCESS
    assert _ran(redis_client, key) == 1  # the follow-up's mark only
    assert _acknowledged(redis_client, result.id)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers; it is dead once its parent reaps it.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_is_cancelled_reads_the_database_at_most_twice_a_second(make_worker, queue: str) -> None:
    make_worker(queue)
    seconds = 2.0
    result = cancellable_loop.apply_async((_key(), seconds), queue=queue)

    counts = result.get(timeout=30)

    assert counts["calls"] > 200, counts  # a tight loop indeed
    assert 1 <= counts["queries"] <= seconds / cancellation.CHECK_INTERVAL + 1, counts


def test_cancelling_a_finished_job_is_a_no_op(live_worker: WorkerProcess) -> None:
    result = slow_noop.delay(7, 0)
    before = wait_for_job(result.id, FINISHED, timeout=30)
    assert before.status == JobStatus.SUCCESS

    outcome = cancel(result.id, terminate=True)

    assert outcome.outcome == Outcome.FINISHED
    assert outcome.done_nothing
    assert "SUCCESS" in outcome.message
    after = Job.objects.get(task_id=result.id)
    assert (after.status, after.cancel_requested_at, after.updated_at, after.result) == (
        JobStatus.SUCCESS,
        None,
        before.updated_at,
        7,
    )
    assert AsyncResult(result.id).get(timeout=5) == 7


@pytest.mark.django_db
def test_unknown_job_id_is_reported_and_nothing_is_done() -> None:
    [outcome] = cancel_many(["no-such-job"])
    assert outcome.outcome == Outcome.UNKNOWN
    assert outcome.done_nothing
    assert not Job.objects.filter(task_id="no-such-job").exists()


def _pending_job_with_outbox_message(claimed: bool) -> str:
    task_id = str(uuid.uuid4())
    record_now(translate.pending(task_id, "tasks.demo.add", [1, 2], {}, "default", None, task_id))
    now = timezone.now()
    OutboxMessage.objects.create(
        task_id=task_id,
        name="tasks.demo.add",
        args=[1, 2],
        due_at=now,
        created_at=now,
        claimed_at=now if claimed else None,
    )
    return task_id


@pytest.mark.django_db(transaction=True)
def test_job_held_in_the_outbox_is_withdrawn_and_revoked_at_once() -> None:
    task_id = _pending_job_with_outbox_message(claimed=False)

    outcome = cancel(task_id)

    assert outcome.outcome == Outcome.NOT_STARTED
    assert "withdrawn" in outcome.message
    assert not OutboxMessage.objects.filter(task_id=task_id).exists()
    job = Job.objects.get(task_id=task_id)
    assert job.status == JobStatus.REVOKED
    assert job.cancel_requested_at is not None
    assert AsyncResult(task_id).state == "REVOKED"
    assert cancel(task_id).outcome == Outcome.FINISHED


@pytest.mark.django_db(transaction=True)
def test_outbox_message_being_published_is_left_to_the_publisher() -> None:
    task_id = _pending_job_with_outbox_message(claimed=True)

    outcome = cancel(task_id)

    # Perhaps on the broker already: revoked like any queued job, discarded on delivery.
    assert outcome.outcome == Outcome.NOT_STARTED
    assert OutboxMessage.objects.filter(task_id=task_id).exists()
    job = Job.objects.get(task_id=task_id)
    assert job.status == JobStatus.PENDING
    assert job.cancel_requested_at is not None
    assert task_id in cancellation.pending_ids()


def test_workers_replies_to_a_hard_cancel_are_read_as_the_ids_killed() -> None:
    replies = [
        {"a@host": {"ok": "terminate: id-1, id-2"}},
        {"b@host": {"ok": "terminate: tasks unknown"}},
        {"c@host": {"error": "boom"}},
    ]
    assert cancel_module.terminated_ids(replies) == {"id-1", "id-2"}
