"""The job page's buttons: which actions apply to this job, among those the user may take.

Its own module so the rule has one home: whether an action applies is asked of the layer
(`tasks.operations.applies_to`, the one-row twin of the bulk rule), never restated here;
this module only orders the buttons and words them for a single job.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tasks.models import Job
from tasks.operations import BulkAction, applies_to


@dataclass(frozen=True, slots=True)
class Button:
    """One action form on the page: it posts `action` for this job to the preview."""

    action: BulkAction
    label: str
    #: Destructive or irreversible (kill a process, delete a dead letter): red, and asks.
    danger: bool = False


#: The words on one job's buttons (BulkAction.label speaks of many jobs), in page order.
BUTTONS = {
    BulkAction.CANCEL: Button(BulkAction.CANCEL, "Cancel"),
    BulkAction.HARD_CANCEL: Button(BulkAction.HARD_CANCEL, "Hard-cancel", danger=True),
    BulkAction.RETRY: Button(BulkAction.RETRY, "Retry"),
    BulkAction.REPLAY: Button(BulkAction.REPLAY, "Replay"),
    BulkAction.PURGE: Button(BulkAction.PURGE, "Purge", danger=True),
}


def actions_for(job: Job, allowed: Iterable[BulkAction]) -> tuple[Button, ...]:
    """The buttons this job shows: what applies to it now, among what the user may do.

    The preview page re-checks the rule over the database, so a button gone stale (the
    job finished meanwhile) only leads to "skipped".
    """
    permitted = set(allowed)
    return tuple(
        button
        for action, button in BUTTONS.items()
        if action in permitted and applies_to(action, job)
    )
