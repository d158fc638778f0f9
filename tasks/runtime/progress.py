"""Progress reporting from inside a running task.

A progress report goes two ways: onto the job row (`progress`, `progress_message`,
through the recording service) and into Celery's result backend as a PROGRESS state, so
`AsyncResult(id).info` shows `{"percent": ..., "message": ...}` while the job runs.
Reports closer together than `MIN_INTERVAL` are dropped (the final 100 % never is), so
a tight loop cannot flood the database.
"""

from __future__ import annotations

import time
from typing import Any

from tasks.record import sinks, translate
from tasks.record.sinks import record

PROGRESS_STATE = "PROGRESS"
MIN_INTERVAL = 0.25  # seconds between two reports of one job that are actually written


def set_progress(task: Any, percent: float, message: str = "") -> bool:
    """Report progress of the task running in this process; True when it was written."""
    request = task.request
    percent = max(0, min(100, int(percent)))
    now = time.monotonic()
    last = getattr(request, "_last_progress_at", None)
    if last is not None and now - last < MIN_INTERVAL and percent < 100:
        return False
    request._last_progress_at = now
    record(translate.progressed(request, percent, message))
    task.update_state(state=PROGRESS_STATE, meta={"percent": percent, "message": message})
    # Progress is for watching now: do not wait for the end of the task.
    sinks.flush()
    return True
