"""`unique_key`: at most one pending or running job per key. (Being written.)"""

from __future__ import annotations

from typing import Any


def connect(app: Any) -> None:
    """Wire worker-side hooks (called from TasksConfig.ready)."""
