"""The job's attempts and its life in time order: the part of the page that answers
"what happened, when, and where".

Apart from the reads because it is pure: it turns a summary and attempt rows into lines,
so the ordering rules (due times inside their attempt's line, a first-try success with
no attempt row) are plain functions over values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from dashboard.job_page.summary import Summary, seconds_between
from tasks.models import JobAttempt, JobStatus


@dataclass(frozen=True, slots=True)
class Moment:
    """One line of the timeline; `status` colours its dot ("" for a neutral one)."""

    at: datetime
    label: str
    detail: str = ""
    status: str = ""
    #: For a retried attempt: when the next one was due (shown in its line rather than
    #: as a line of its own: with jitter, due times interleave with the attempts).
    next_due: datetime | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    number: int
    status: str
    worker: str
    started_at: datetime | None
    finished_at: datetime | None
    error: str
    next_attempt_at: datetime | None
    #: False for a first attempt known only from the job row (a success at the first
    #: try has no attempt row: tasks.record.service.attempt_rows).
    recorded: bool = True

    @property
    def run_seconds(self) -> float | None:
        return seconds_between(self.started_at, self.finished_at)


def attempts_of(summary: Summary, rows: Iterable[JobAttempt]) -> tuple[Attempt, ...]:
    attempts = tuple(
        Attempt(
            number=row.number,
            status=row.status,
            worker=row.worker,
            started_at=row.started_at,
            finished_at=row.finished_at,
            error=row.error,
            next_attempt_at=row.next_attempt_at,
        )
        for row in rows
    )
    if attempts or summary.started_at is None:
        return attempts
    # A job done at its first try keeps no attempt row: its own row is that attempt.
    outcome = summary.status if summary.status != JobStatus.RECEIVED else JobStatus.STARTED
    return (
        Attempt(
            number=1,
            status=outcome,
            worker=summary.worker,
            started_at=summary.started_at,
            finished_at=summary.finished_at,
            error="",
            next_attempt_at=None,
            recorded=False,
        ),
    )


def timeline_of(summary: Summary, attempts: Iterable[Attempt]) -> tuple[Moment, ...]:
    """The job's life in time order: created, sent, each attempt (and a re-publish by
    the layer after the broker lost the job), and how it ended. Only the last re-publish
    has a time on the row (`recovered_at`); its line says how many there were."""
    moments = [Moment(summary.created_at, "Created", summary.queue and f"queue {summary.queue}")]
    if summary.sent_at:
        moments.append(Moment(summary.sent_at, "Sent", "published to the broker"))
    attempts = tuple(attempts)
    # `eta` is the latest due time: a countdown's, or the last retry's (shown with it).
    retried = any(attempt.next_attempt_at for attempt in attempts)
    if summary.eta and not retried and summary.eta > (summary.sent_at or summary.created_at):
        moments.append(Moment(summary.eta, "Due", "countdown or ETA"))
    for attempt in attempts:
        if attempt.started_at:
            moments.append(
                Moment(
                    attempt.started_at,
                    f"Attempt {attempt.number} started",
                    attempt.worker and f"on {attempt.worker}",
                    JobStatus.STARTED,
                )
            )
        if attempt.finished_at and attempt.status != JobStatus.STARTED:
            detail = _first_line(attempt.error)
            if attempt.run_seconds is not None:
                detail = f"after {_short(attempt.run_seconds)}" + (f": {detail}" if detail else "")
            moments.append(
                Moment(
                    attempt.finished_at,
                    f"Attempt {attempt.number}: {attempt.status.lower()}",
                    detail,
                    attempt.status,
                    attempt.next_attempt_at,
                )
            )
    if summary.recovered_at:
        times = f" (the {_ordinal(summary.recoveries)} time)" if summary.recoveries > 1 else ""
        moments.append(
            Moment(
                summary.recovered_at,
                "Re-published by the layer",
                (summary.recovered_because or "the broker lost it") + times,
                JobStatus.SENT,
            )
        )
    if summary.cancel_requested_at:
        moments.append(Moment(summary.cancel_requested_at, "Cancel requested", "", "REVOKED"))
    if summary.dead_lettered_at:
        moments.append(Moment(summary.dead_lettered_at, "Dead-lettered", "", "FAILURE"))
    if summary.dead_letter_resolved_at:
        moments.append(
            Moment(
                summary.dead_letter_resolved_at,
                f"Dead letter {summary.dead_letter_resolution or 'resolved'}",
            )
        )
    if summary.finished_at:
        moments.append(
            Moment(summary.finished_at, "Finished", summary.status.lower(), summary.status)
        )
    # Stable: moments at the same instant keep the order of the job's life above.
    return tuple(sorted(moments, key=lambda moment: moment.at))


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _first_line(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else f"{line[: limit - 1]}…"


def _short(seconds: float) -> str:
    """A run time inside a sentence of the timeline (the tables use the `duration` filter)."""
    if seconds < 1:
        millis = round(seconds * 1000)
        return f"{millis} ms" if millis or not seconds else "<1 ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s"
