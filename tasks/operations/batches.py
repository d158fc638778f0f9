"""A batch (group or chord) as an operator acts on it: cancel the members not finished.

"Cancel the rest" is the bulk cancel (tasks.operations.bulk) over the batch's jobs: its
members and, for a chord, its callback once recorded (a callback left waiting would run
on the members that did finish). Jobs already finished are skipped and counted; like
every bulk action it is refused as a whole past `TASKS_BULK_ACTION_LIMIT`. Members that
are running stop at their next `is_cancelled()` check; waiting ones (queued, held for a
countdown) end REVOKED without running, and the Batch row counts them cancelled.
"""

from __future__ import annotations

from django.db.models import QuerySet

from tasks.conf import layer_settings
from tasks.models import Job
from tasks.operations import bulk


def batch_jobs(group_id: str) -> QuerySet[Job]:
    """The batch's jobs: its members and a chord's callback (all carry its group id)."""
    return Job.objects.in_group(group_id)


def cancel_rest_preview(group_id: str) -> bulk.Preview:
    """How many of the batch's jobs "cancel the rest" would cancel, how many it skips."""
    return bulk.preview(
        bulk.BulkAction.CANCEL, batch_jobs(group_id), layer_settings().bulk_action_limit
    )


def cancel_rest(group_id: str, by: str | None = None) -> bulk.BulkResult:
    """Cancel every job of the batch not finished yet; `done` is how many, `skipped`
    how many were finished already (or finished meanwhile). BulkLimitExceeded, and
    nothing done, when more than `TASKS_BULK_ACTION_LIMIT` jobs are still to cancel."""
    return bulk.apply(
        bulk.BulkAction.CANCEL,
        batch_jobs(group_id),
        layer_settings().bulk_action_limit,
        requested_by=by,
    )
