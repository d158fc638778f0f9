"""The queues page's rows: tasks.operations.queue_states(), shared for a moment, with
what the page adds (the explorer link, the drain time in words)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.urls import reverse

from dashboard.read.shared import shared
from tasks.operations import QueueState, queue_states

#: Permission for pause, resume and purge (Django's default change permission of QueuePause).
CHANGE_PERMISSION = "tasklayer.change_queuepause"


@dataclass(frozen=True, slots=True)
class QueueRow:
    state: QueueState
    jobs_url: str

    @property
    def backlog(self) -> bool:
        """Waiting and not draining: what an operator should look at first."""
        state = self.state
        return bool(state.depth) and (state.paused or state.drain_seconds is None)


@dataclass(frozen=True, slots=True)
class Queues:
    rows: list[QueueRow]
    can_change: bool

    @property
    def broker_down(self) -> bool:
        return bool(self.rows) and all(row.state.depth is None for row in self.rows)


def jobs_url(name: str) -> str:
    return reverse("dashboard:jobs") + "?" + urlencode({"q": f"queue:{name}"})


def load(can_change: bool) -> Queues:
    # Kept by `shared` (TASKS_DASHBOARD_SHARED_SECONDS), not by queue_states' own cache.
    states = shared(("queues",), lambda: queue_states(max_age=0))
    return Queues(
        rows=[QueueRow(state=state, jobs_url=jobs_url(state.name)) for state in states],
        can_change=can_change,
    )
