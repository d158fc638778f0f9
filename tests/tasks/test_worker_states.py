"""Workers as the operations API sees them, with real workers on the real Redis broker:
counts that match the jobs run, a pool grown and shrunk by remote control, a warm
shutdown that lets the running job finish and leaves the worker stopped, and a worker
killed with SIGKILL shown lost with its running job at risk.

The workers beat every second (TASKS_HEARTBEAT_INTERVAL=1), and this process judges
by the same window (3 s), so "lost" shows within seconds instead of 15.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from celery import Celery

from demo.tasks import sleep_with_progress
from devstack.redis_server import RedisServer
from tasks.models import JobStatus, WorkerBeat
from tasks.operations import (
    PoolChange,
    WorkerState,
    WorkerStatus,
    lost_workers,
    resize_pool,
    shutdown_worker,
    worker_states,
)
from tasks.runtime import heartbeat
from tests.conftest import worker_env
from tests.support.jobs import wait_for_job
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.django_db(transaction=True)

T = TypeVar("T")
INTERVAL = 1


@pytest.fixture(autouse=True)
def _short_window(settings: Any) -> None:
    settings.TASKS_HEARTBEAT_INTERVAL = INTERVAL


def start_worker(
    celery_app: Celery,
    redis_server: RedisServer,
    output_dir: Path,
    tag: str,
    concurrency: int = 1,
    extra_args: tuple[str, ...] = (),
) -> WorkerProcess:
    env = worker_env(redis_server.url, side_redis_url=redis_server.url)
    env["TASKS_HEARTBEAT_INTERVAL"] = str(INTERVAL)
    return WorkerProcess(
        app=celery_app,
        env=env,
        queues=f"workers-{tag}-{uuid.uuid4().hex[:6]}",
        concurrency=concurrency,
        extra_args=extra_args,
        log_path=output_dir / "logs" / f"worker-states-{tag}.log",
    ).start()


@pytest.fixture
def worker_factory(
    celery_app: Celery, redis_server: RedisServer, output_dir: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(tag: str, concurrency: int = 1, extra_args: tuple[str, ...] = ()) -> WorkerProcess:
        worker = start_worker(celery_app, redis_server, output_dir, tag, concurrency, extra_args)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def eventually(check: Callable[[], T | None], timeout: float = 20.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {what}")


def state_of(hostname: str) -> WorkerState | None:
    return next((s for s in worker_states() if s.hostname == hostname), None)


def recorder_pids(parent: int) -> list[int]:
    """The recorder_and_relay processes started by the worker `parent`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"tasks.runtime.recorder_and_relay" in argv and str(parent).encode() in argv:
            found.append(int(entry))
    return found


def pool_processes(celery_app: Celery, hostname: str) -> int:
    stats = celery_app.control.inspect([hostname], timeout=2).stats() or {}
    return len(stats.get(hostname, {}).get("pool", {}).get("processes", []))


def test_counts_match_the_jobs_run_and_the_pool_grows_and_shrinks(
    celery_app: Celery, worker_factory: Callable[..., WorkerProcess]
) -> None:
    worker = worker_factory("counts", concurrency=1)
    queue = worker.queues
    ok = [celery_app.send_task("tests.faults.slow_noop", args=[i], queue=queue) for i in range(4)]
    bad = [celery_app.send_task("tests.faults.no_dead_letter", queue=queue) for _ in range(2)]
    for result in ok:
        assert wait_for_job(result.id).status == JobStatus.SUCCESS
    for result in bad:
        assert wait_for_job(result.id).status == JobStatus.FAILURE

    state = eventually(
        lambda: (s := state_of(worker.name)) and s.processed == 6 and s,
        what="processed reaches 6",
    )
    assert (state.processed, state.failed) == (6, 2)
    assert state.status is WorkerStatus.ONLINE
    assert (state.pool, state.concurrency, state.queues) == ("prefork", 1, (queue,))
    assert worker.process is not None
    assert state.pid == worker.process.pid
    assert state.uptime_seconds > 0

    grown = resize_pool(worker.name, PoolChange.GROW)
    assert grown.ok, grown.message
    # Celery's own view: the pool's processes (its "max-concurrency" is the -c of the start).
    eventually(lambda: pool_processes(celery_app, worker.name) == 2, what="2 pool processes")
    eventually(lambda: (s := state_of(worker.name)) and s.concurrency == 2, what="2 processes")

    shrunk = resize_pool(worker.name, PoolChange.SHRINK)
    assert shrunk.ok, shrunk.message
    eventually(lambda: (s := state_of(worker.name)) and s.concurrency == 1, what="1 process")
    eventually(lambda: pool_processes(celery_app, worker.name) == 1, what="1 pool process")
    # A pool keeps one process.
    refused = resize_pool(worker.name, PoolChange.SHRINK)
    assert not refused.ok
    assert "at least one" in refused.message
    assert worker.is_alive()


def test_a_replaced_pool_process_carries_on_the_count_of_the_one_before(
    celery_app: Celery, worker_factory: Callable[..., WorkerProcess]
) -> None:
    # Every job in a fresh child: each new child takes over its predecessor's slot.
    worker = worker_factory("recycled", concurrency=1, extra_args=("--max-tasks-per-child=1",))
    results = [
        celery_app.send_task("tests.faults.slow_noop", args=[i], queue=worker.queues)
        for i in range(3)
    ]
    results.append(celery_app.send_task("tests.faults.no_dead_letter", queue=worker.queues))
    for result in results:
        wait_for_job(result.id)
    state = eventually(
        lambda: (s := state_of(worker.name)) and s.processed == 4 and s,
        what="processed reaches 4",
    )
    assert state.failed == 1


def test_a_graceful_shutdown_lets_the_running_job_finish_and_leaves_the_worker_stopped(
    celery_app: Celery, worker_factory: Callable[..., WorkerProcess]
) -> None:
    worker = worker_factory("shutdown")
    # It reports progress, which records it STARTED at once (on SQLite a job that does
    # not is recorded when it ends).
    job = sleep_with_progress.apply_async((6, 6), queue=worker.queues)
    wait_for_job(job.id, statuses=[JobStatus.STARTED])
    eventually(lambda: (s := state_of(worker.name)) and s.running_count == 1, what="running 1")

    result = shutdown_worker(worker.name)
    assert result.ok, result.message
    assert worker.process is not None
    worker.process.wait(timeout=30)  # exits by itself

    assert wait_for_job(job.id).status == JobStatus.SUCCESS
    state = state_of(worker.name)
    assert state is not None
    assert state.status is WorkerStatus.STOPPED
    assert (state.processed, state.running_count, state.at_risk) == (1, 0, False)
    # Stopped is not lost, and cannot be asked again.
    assert worker.name not in lost_workers()
    assert not shutdown_worker(worker.name).ok


def test_a_worker_killed_with_sigkill_is_shown_lost_and_its_running_job_at_risk(
    celery_app: Celery,
    worker_factory: Callable[..., WorkerProcess],
) -> None:
    worker = worker_factory("killed")
    job = sleep_with_progress.apply_async((120, 120), queue=worker.queues)
    wait_for_job(job.id, statuses=[JobStatus.STARTED])
    assert eventually(lambda: (s := state_of(worker.name)) and s).status is WorkerStatus.ONLINE
    assert worker.process is not None
    main_pid = worker.process.pid
    recorders = eventually(lambda: recorder_pids(main_pid), what="its recorder process")

    os.kill(main_pid, signal.SIGKILL)
    # The process beside it notices its parent is gone and exits without marking it
    # stopped: nothing beats for the worker any more.
    eventually(
        lambda: not any(os.path.exists(f"/proc/{pid}") and _alive(pid) for pid in recorders),
        timeout=10,
        what="the recorder exits",
    )

    state = eventually(
        lambda: (s := state_of(worker.name)) and s.status is WorkerStatus.LOST and s,
        timeout=15,
        what="shown lost",
    )
    assert state.stopped_at is None
    assert state.at_risk
    assert state.running_count == 1
    assert [j.task_id for j in state.running] == [job.id]
    assert worker.name in lost_workers()
    # Lost workers come first.
    assert worker_states()[0].hostname == worker.name
    # Not online any more for the overview either.
    assert worker.name not in [beat.hostname for beat in heartbeat.online()]
    assert WorkerBeat.objects.get(hostname=worker.name).stopped_at is None
    # Nothing to steer on a lost worker.
    assert not resize_pool(worker.name, PoolChange.GROW).ok
    assert not shutdown_worker(worker.name).ok


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_only_a_prefork_pool_is_resized() -> None:
    from django.utils import timezone

    now = timezone.now()
    WorkerBeat.objects.create(
        hostname="solo@example",
        pid=1,
        pool="solo",
        concurrency=1,
        queues=["default"],
        started_at=now,
        last_seen_at=now,
    )
    result = resize_pool("solo@example", PoolChange.GROW)
    assert not result.ok
    assert "solo pool" in result.message
    assert "prefork" in result.message
    assert not resize_pool("nobody@example", PoolChange.GROW).ok
