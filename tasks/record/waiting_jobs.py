"""RECEIVED, recorded only for jobs that actually wait in a worker.

A worker's main process is Celery's bottleneck (it reads, dispatches and acknowledges
every message), and under load a received job starts within microseconds, so
recording every RECEIVED there cost about a sixth of that process's time for a state
no one would see. Instead, a timer looks at the worker's own bookkeeping
(`celery.worker.state.requests`) every `INTERVAL`: a job still not handed to a pool
process on the second look -- waiting for its ETA, for a free process, for a rate
limit -- is recorded RECEIVED, with the worker holding it. A job that starts first
goes straight from SENT to STARTED.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps
from celery.worker import state as worker_state

from tasks.record import translate
from tasks.record.sinks import record

logger = logging.getLogger(__name__)

INTERVAL = 0.2  # seconds between looks; a job waiting longer than this shows RECEIVED


class WaitingJobs:
    """Which held jobs were seen waiting, and which are recorded RECEIVED already."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._recorded: set[str] = set()

    def look(self, requests: dict[str, Any], active: Any) -> list[Any]:
        """Requests waiting since the previous look and not recorded yet."""
        waiting = {
            task_id: request for task_id, request in list(requests.items()) if request not in active
        }
        due = [
            request
            for task_id, request in waiting.items()
            if task_id in self._seen and task_id not in self._recorded
        ]
        self._recorded = {task_id for task_id in self._recorded if task_id in waiting}
        self._recorded.update(request.id for request in due)
        self._seen = set(waiting)
        return due


class WaitingJobsReporter(bootsteps.StartStopStep):
    label = "Waiting jobs reporter"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._jobs = WaitingJobs()
        self._timer_entry: Any = None

    def start(self, parent: Any) -> None:
        self._timer_entry = parent.timer.call_repeatedly(INTERVAL, self._report)

    def _report(self) -> None:
        try:
            for request in self._jobs.look(worker_state.requests, worker_state.active_requests):
                record(translate.received(request))
        except Exception:
            logger.exception("Could not record waiting jobs")

    def stop(self, parent: Any) -> None:
        if self._timer_entry is not None:
            self._timer_entry.cancel()
