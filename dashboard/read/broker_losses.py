"""The overview's notice after the broker lost its data: "N jobs re-published after the
broker restarted at 10:42", and the explorer filter that lists those jobs.

Read from the BrokerLoss rows the watcher beside each worker writes (a handful a year,
indexed by detection time), never from the job table: the notice is on a page that
refreshes every few seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from dashboard.read.explore import moment
from dashboard.read.windows import DAY
from tasks.models import BrokerLoss
from tasks.operations import recent_broker_losses


@dataclass(frozen=True, slots=True)
class LossNotice:
    """The latest loss of the window, and how many there were."""

    latest: BrokerLoss
    #: Losses detected in the window, the latest included.
    losses: int
    #: Jobs re-published after every loss of the window.
    republished_in_window: int
    q: str
    """The explorer filter of the jobs re-published since the latest loss was detected."""

    @property
    def at(self) -> datetime:
        """When the broker restarted, if it said; else when the loss was found."""
        return self.latest.restarted_at or self.latest.detected_at

    @property
    def restarted(self) -> bool:
        return self.latest.restarted_at is not None

    @property
    def republished(self) -> int:
        return self.latest.republished

    @property
    def still_held(self) -> int:
        return self.latest.still_held

    @property
    def in_progress(self) -> bool:
        """The lost jobs are still being marked to publish again (the count may grow)."""
        return self.latest.finished_at is None

    @property
    def earlier(self) -> int:
        return self.losses - 1


def loss_notice(now: datetime) -> LossNotice | None:
    """The notice for the losses detected in the last 24 hours, or None."""
    return notice_of(recent_broker_losses(now - DAY))


def notice_of(losses: Sequence[BrokerLoss]) -> LossNotice | None:
    """`losses` newest first (recent_broker_losses' order)."""
    if not losses:
        return None
    latest = losses[0]
    # The layer marks a lost job after it found the loss (tasks.runtime.broker_recovery sets
    # recovered_at to the time it marks), and only jobs published before it found it:
    # every job re-published since has recovered_at at or after detected_at and was
    # created before it. Both bounds whole seconds, widened to stay inclusive. `before:`
    # starts the explorer's newest-first keyset read at the loss, past the jobs created
    # since (recovered_at has no index: dashboard.search.jobs._recovered).
    found = latest.detected_at.replace(microsecond=0)
    return LossNotice(
        latest=latest,
        losses=len(losses),
        republished_in_window=sum(loss.republished for loss in losses),
        q=f"before:{moment(found + timedelta(seconds=1))} recovered:{moment(found)}",
    )
