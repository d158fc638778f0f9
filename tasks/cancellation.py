"""Cancelling jobs: queued, delayed and running. (Being written: see the cancellation work.)"""

from __future__ import annotations

from typing import Any


def is_cancelled(task: Any) -> bool:
    """True once an operator asked to cancel the job this task is running."""
    return False


def connect(app: Any) -> None:
    """Wire worker-side hooks (called from TasksConfig.ready)."""
