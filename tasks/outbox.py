"""The outbox: messages published from the database when the broker cannot take them now.

(Being written: see the publishing-path work.)
"""

from __future__ import annotations

from typing import Any


def connect(app: Any) -> None:
    """Wire worker-side hooks (called from TasksConfig.ready)."""
