"""Jobs waiting in each queue: PENDING, SENT, RECEIVED or RETRY, counted up to a cap.

One bounded count per configured queue (tasks.conf's `queues`, the same list the admin
filters by), each read through the (queue, status) index: at most CAP + 1 index entries
per queue, whatever the size of the table.
"""

from __future__ import annotations

from dataclasses import dataclass

from dashboard.read.explore import query, statuses
from dashboard.read.status_counts import CAP
from tasks.conf import layer_settings
from tasks.models import QUEUED, Job
from tasks.operations import Tally, bounded_count


@dataclass(frozen=True, slots=True)
class QueueBacklog:
    queue: str
    queued: Tally
    q: str
    """The explorer filter listing these jobs."""


def backlog() -> list[QueueBacklog]:
    """Queued jobs per configured queue, in the configured order."""
    return [
        QueueBacklog(
            queue,
            bounded_count(Job.objects.queued().in_queue(queue), CAP),
            query(statuses(*QUEUED), f"queue:{queue}"),
        )
        for queue in layer_settings().queues
    ]
