"""A database read repeated on a thread beside a worker's event loop, whose timer picks
up only the latest answer.

The worker's main process is Celery's bottleneck and must not wait for the database:
its consumer steps (cancelled jobs, paused queues) read the rows here and apply them
from the timer, where `take()` costs a lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from django.db import close_old_connections, connection

logger = logging.getLogger(__name__)

T = TypeVar("T")


class LatestReading(threading.Thread, Generic[T]):
    """Calls `read()` every `interval` seconds until stopped; `take()` returns the latest
    answer once (None when there is none new). A failed read is logged and retried."""

    def __init__(self, name: str, interval: float, read: Callable[[], T], what: str) -> None:
        super().__init__(name=name, daemon=True)
        self._interval = interval
        self._read = read
        self._what = what
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._latest: T | None = None

    def run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                close_old_connections()
                value = self._read()
            except Exception:
                logger.warning("Could not read %s; will retry", self._what, exc_info=True)
                continue
            with self._lock:
                self._latest = value
        connection.close()

    def take(self) -> T | None:
        with self._lock:
            value, self._latest = self._latest, None
        return value

    def stop(self) -> None:
        self._stopped.set()
