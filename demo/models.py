"""The demo's own model: not part of the installed library."""

from __future__ import annotations

from django.db import models


class DemoCounter(models.Model):
    """Attempt counters for the `tasks.demo.flaky` demo task, shared by all workers.

    Lives in the database (not worker memory) so "fail the first N attempts for this
    key" holds across processes, restarts and replays.
    """

    key = models.CharField(max_length=255, unique=True)
    count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.key}={self.count}"
