"""The Workers page's read model: every recent worker (tasks.operations.worker_states),
counted by status, with each worker's link to Flower.

Two bounded queries per refresh (the heartbeat rows of the last day and the running
jobs of those workers, cut at tasks.operations.workers.RUNNING_LIMIT): neither grows
with the job table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from tasks.operations import WorkerState, WorkerStatus, worker_states
from tasks.operations.workers import online_window


@dataclass(frozen=True, slots=True)
class WorkerRow:
    state: WorkerState
    #: Flower's page for this worker ('' without TASKS_FLOWER_URL).
    flower_url: str


@dataclass(frozen=True, slots=True)
class Workers:
    rows: tuple[WorkerRow, ...]
    online: int
    lost: int
    stopped: int
    #: Running jobs on lost or stopped workers.
    at_risk: int
    #: Seconds of silence after which a worker is shown lost.
    window_seconds: float


def load(now: datetime, flower_url: str = "") -> Workers:
    states = worker_states(now)
    by_status = {status: 0 for status in WorkerStatus}
    for state in states:
        by_status[state.status] += 1
    return Workers(
        rows=tuple(
            WorkerRow(state, flower_worker_url(flower_url, state.hostname)) for state in states
        ),
        online=by_status[WorkerStatus.ONLINE],
        lost=by_status[WorkerStatus.LOST],
        stopped=by_status[WorkerStatus.STOPPED],
        at_risk=sum(state.running_count for state in states if state.at_risk),
        window_seconds=online_window().total_seconds(),
    )


def flower_worker_url(base: str, hostname: str) -> str:
    """Flower's page of one worker: `<flower>/worker/<hostname>`."""
    if not base:
        return ""
    return f"{base.rstrip('/')}/worker/{quote(hostname, safe='@')}"
