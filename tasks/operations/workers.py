"""Workers: who is online, lost or stopped, what each runs now, and steering them.

Read from the heartbeats (tasks.runtime.heartbeat: one WorkerBeat row per worker,
written every few seconds by the process beside it) and from the running job rows; the
actions go through Celery's remote control to one worker (`destination=[hostname]`).

A worker is **online** while its last beat is younger than the heartbeat window,
**stopped** when it shut down cleanly (its last beat marked it), and **lost** when
its beats stopped without that mark (killed, its machine gone, cut off from the
database). The jobs a lost worker was running are **at risk**: with late
acknowledgement the broker hands them to another worker once the message's visibility
timeout passes (Redis) or the connection closes (RabbitMQ), but until then nobody runs
them.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.utils import timezone

from tasks.models import Job, WorkerBeat
from tasks.runtime import heartbeat

#: Running jobs read for all the workers listed at once, newest first: more than any
#: pool runs at a time, so the per-worker counts are exact unless this many are running.
RUNNING_LIMIT = 1_000
#: Running jobs listed under one worker (the rest are counted).
LISTED_PER_WORKER = 10
#: How long an action waits for the worker's reply.
REPLY_TIMEOUT = 2.0
#: Pools whose size the remote control changes (Celery: grow/shrink of prefork only;
#: a threads pool's size is fixed at start, solo runs one job at a time).
RESIZABLE_POOLS = frozenset({"prefork"})


class WorkerStatus(enum.StrEnum):
    ONLINE = "online"
    LOST = "lost"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class RunningJob:
    task_id: str
    name: str
    started_at: datetime | None


@dataclass(frozen=True, slots=True)
class WorkerState:
    hostname: str
    pid: int
    pool: str
    concurrency: int
    queues: tuple[str, ...]
    status: WorkerStatus
    started_at: datetime
    last_seen_at: datetime
    stopped_at: datetime | None
    processed: int
    failed: int
    #: Jobs recorded as running on it now (exact below RUNNING_LIMIT in all).
    running_count: int
    #: The newest of them, at most LISTED_PER_WORKER.
    running: tuple[RunningJob, ...]
    #: Seconds since its last beat, measured when read.
    silent_seconds: float
    #: Seconds it has been up (to its stop, or to its last beat when lost).
    uptime_seconds: float

    @property
    def lost(self) -> bool:
        return self.status is WorkerStatus.LOST

    @property
    def at_risk(self) -> bool:
        """Its running jobs are at risk: nobody is running them while it is not online."""
        return self.status is not WorkerStatus.ONLINE and self.running_count > 0

    @property
    def resizable(self) -> bool:
        return self.pool in RESIZABLE_POOLS


#: Lost first (someone should look), then online, then stopped; by name within each.
_ORDER = {WorkerStatus.LOST: 0, WorkerStatus.ONLINE: 1, WorkerStatus.STOPPED: 2}


def status_of(beat: WorkerBeat, now: datetime) -> WorkerStatus:
    if beat.stopped_at is not None:
        return WorkerStatus.STOPPED
    if beat.last_seen_at >= now - heartbeat.online_within():
        return WorkerStatus.ONLINE
    return WorkerStatus.LOST


def worker_states(now: datetime | None = None) -> list[WorkerState]:
    """Every worker that beat in the last RECENT_WITHIN, lost ones first.

    Two queries: the recent heartbeat rows (the `worker_last_seen` index) and the
    running jobs of those workers, one range of the `job_status_created` index
    (status = STARTED) cut at RUNNING_LIMIT rows: neither grows with the job table.
    """
    now = now or timezone.now()
    beats = list(WorkerBeat.objects.filter(last_seen_at__gte=now - heartbeat.RECENT_WITHIN))
    running = _running_by_worker(beat.hostname for beat in beats)
    states = [_state(beat, now, running.get(beat.hostname, [])) for beat in beats]
    states.sort(key=lambda state: (_ORDER[state.status], state.hostname))
    return states


def lost_workers(now: datetime | None = None) -> frozenset[str]:
    """The hostnames of the lost workers (recent ones): a job recorded as running on one
    of them is at risk. One small query on the heartbeat rows."""
    now = now or timezone.now()
    return frozenset(
        WorkerBeat.objects.filter(
            last_seen_at__gte=now - heartbeat.RECENT_WITHIN,
            last_seen_at__lt=now - heartbeat.online_within(),
            stopped_at__isnull=True,
        ).values_list("hostname", flat=True)
    )


def _running_by_worker(hostnames: Iterable[str]) -> dict[str, list[RunningJob]]:
    names = sorted(set(hostnames))
    if not names:
        return {}
    rows = (
        Job.objects.running()
        .filter(worker__in=names)
        .order_by("-created_at")
        .values_list("worker", "task_id", "name", "started_at")[:RUNNING_LIMIT]
    )
    by_worker: dict[str, list[RunningJob]] = defaultdict(list)
    for worker, task_id, name, started_at in rows:
        by_worker[worker].append(RunningJob(task_id, name, started_at))
    return by_worker


def _state(beat: WorkerBeat, now: datetime, running: list[RunningJob]) -> WorkerState:
    status = status_of(beat, now)
    end = {
        WorkerStatus.ONLINE: now,
        WorkerStatus.STOPPED: beat.stopped_at or beat.last_seen_at,
        WorkerStatus.LOST: beat.last_seen_at,
    }[status]
    return WorkerState(
        hostname=beat.hostname,
        pid=beat.pid,
        pool=beat.pool,
        concurrency=beat.concurrency,
        queues=tuple(beat.queues or ()),
        status=status,
        started_at=beat.started_at,
        last_seen_at=beat.last_seen_at,
        stopped_at=beat.stopped_at,
        processed=beat.processed,
        failed=beat.failed,
        running_count=len(running),
        running=tuple(running[:LISTED_PER_WORKER]),
        silent_seconds=max(0.0, (now - beat.last_seen_at).total_seconds()),
        uptime_seconds=max(0.0, (end - beat.started_at).total_seconds()),
    )


# --- actions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ControlResult:
    """What a remote-control action did: `ok` and the worker's answer, in words."""

    ok: bool
    message: str

    def __str__(self) -> str:
        return self.message


class PoolChange(enum.StrEnum):
    GROW = "grow"
    SHRINK = "shrink"


def resize_pool(hostname: str, change: PoolChange, n: int = 1) -> ControlResult:
    """Grow or shrink a prefork worker's pool by `n` processes; waits REPLY_TIMEOUT for
    the worker's answer. The new size shows at its next heartbeat."""
    beat = WorkerBeat.objects.filter(hostname=hostname).first()
    if beat is None:
        return ControlResult(False, f"No worker named {hostname} has sent a heartbeat.")
    now = timezone.now()
    if status_of(beat, now) is not WorkerStatus.ONLINE:
        return ControlResult(False, f"{hostname} is {status_of(beat, now)}: nothing to resize.")
    if beat.pool not in RESIZABLE_POOLS:
        return ControlResult(
            False,
            f"{hostname} runs a {beat.pool or 'unknown'} pool, whose size is fixed: only a "
            "prefork pool grows or shrinks. Restart the worker with another -c instead.",
        )
    if n < 1:
        return ControlResult(False, "Resize by at least one process.")
    if change is PoolChange.SHRINK and beat.concurrency - n < 1:
        return ControlResult(
            False, f"{hostname} has {beat.concurrency} process(es): a pool keeps at least one."
        )
    command = (
        current_app.control.pool_grow
        if change is PoolChange.GROW
        else current_app.control.pool_shrink
    )
    replies = command(n, destination=[hostname], reply=True, timeout=REPLY_TIMEOUT)
    return _answer(hostname, replies, f"{change.value} the pool by {n}")


def shutdown(hostname: str) -> ControlResult:
    """Ask a worker for a warm shutdown: it stops taking jobs, lets the running ones
    finish, then exits (and its last heartbeat marks it stopped).

    No reply is awaited: a worker leaves its remote-control loop by raising the
    shutdown, before it could answer. Whether it stopped shows on its heartbeat row.
    """
    beat = WorkerBeat.objects.filter(hostname=hostname).first()
    if beat is None:
        return ControlResult(False, f"No worker named {hostname} has sent a heartbeat.")
    status = status_of(beat, timezone.now())
    if status is not WorkerStatus.ONLINE:
        return ControlResult(False, f"{hostname} is {status}: it cannot be asked to stop.")
    current_app.control.shutdown(destination=[hostname])
    return ControlResult(
        True,
        f"Asked {hostname} to shut down: it takes no new jobs and stops once its running "
        "jobs finish.",
    )


def _answer(hostname: str, replies: list[dict[str, Any]] | None, what: str) -> ControlResult:
    for reply in replies or ():
        answer = reply.get(hostname)
        if isinstance(answer, dict):
            if "ok" in answer:
                return ControlResult(True, f"{hostname}: {answer['ok']}.")
            return ControlResult(False, f"{hostname} refused to {what}: {answer.get('error')}")
    return ControlResult(
        False, f"{hostname} did not answer within {REPLY_TIMEOUT:g} s: it may be busy or gone."
    )


def online_window() -> timedelta:
    """How long a worker may stay silent before it is shown lost."""
    return heartbeat.online_within()
