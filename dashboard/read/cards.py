"""The overview's headline numbers: running, queued, dead letters, failed, workers.

Counts of job rows are bounded (CAP; "more than 1,000"), each through an index: the
(status, created_at) index for running and queued jobs, the partial index of dead
letters for those parked. Failures of the last hour come from the tallies, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from dashboard.read.explore import query, statuses
from dashboard.read.status_counts import CAP, finished_counts
from dashboard.read.windows import HOUR, tally_span
from tasks.models import QUEUED, Job, JobStatus
from tasks.operations import Tally, bounded_count, workers_online


@dataclass(frozen=True, slots=True)
class Card:
    key: str
    label: str
    count: Tally
    q: str
    """The explorer filter of the jobs behind the number ("" when it is not jobs)."""
    status: str = ""
    """The status whose colour the card takes ("" for none)."""

    @property
    def value(self) -> str:
        """The number, short enough for a tile: "1,000+" past the cap."""
        return f"{self.count.count:,}+" if self.count.more else f"{self.count.count:,}"


def overview_cards(now: datetime | None = None, workers: int | None = None) -> list[Card]:
    """Running now, queued, dead letters waiting, failed in the last hour, workers online
    (`workers`: the number the caller already read, else read here)."""
    now = now or timezone.now()
    last_hour = tally_span(now, HOUR)
    failed = finished_counts(last_hour).get(JobStatus.FAILURE, 0)
    return [
        Card(
            "running",
            "Running now",
            bounded_count(Job.objects.running(), CAP),
            statuses(JobStatus.STARTED),
            JobStatus.STARTED,
        ),
        Card(
            "queued",
            "Queued",
            bounded_count(Job.objects.queued(), CAP),
            statuses(*QUEUED),
            JobStatus.SENT,
        ),
        Card(
            "dead",
            "Dead letters waiting",
            bounded_count(Job.objects.parked_dead_letters(), CAP),
            "dead:yes",
            JobStatus.REVOKED,
        ),
        Card(
            "failed",
            "Failed in the last hour",
            Tally(failed),
            query(statuses(JobStatus.FAILURE), after=last_hour.start),
            JobStatus.FAILURE,
        ),
        Card(
            "workers",
            "Workers online",
            Tally(len(workers_online(now)) if workers is None else workers),
            "",
        ),
    ]
