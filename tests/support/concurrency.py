"""Running a function in several threads at once, each with its own database connection."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import connections


def in_threads(count: int, target: Callable[[], object]) -> list[object]:
    """Run `target` in `count` threads released together; their results."""
    barrier = threading.Barrier(count)
    results: list[object] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(target())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results
