"""The job page's read model: one job, its attempts, its family and its correlation
trace, as typed values the templates only display.

Every query is served by an index, so the page costs the same on a table of ten million
rows as on ten: the job by its unique task id, its attempts by `JobAttempt.task_id`,
parent, root and "retried from" by their keys, children inside the family's partial
index (`job_root_other`), reruns by `job_retried_from`, the group's size by
`job_group_member` (a count capped by a LIMIT), the trace by `job_correlation_other`.
Lists are bounded; past a bound the page says "more".

Arguments, keyword arguments and the result go through `redact` here, so no template
can show them unmasked: the summary carries no raw payload at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Q

from dashboard.redaction import redact
from tasks.models import IS_A_RERUN, Job, JobAttempt, JobStatus
from tasks.operations import BulkAction, Tally, bounded_count

#: Final statuses: nothing changes a job after these (the page stops refreshing).
FINAL = frozenset({JobStatus.SUCCESS, JobStatus.FAILURE, JobStatus.REVOKED})
#: What an operator retry accepts (tasks.operations.reruns.RETRYABLE).
RETRYABLE = frozenset({JobStatus.FAILURE, JobStatus.REVOKED})

CHILDREN_SHOWN = 50
RERUNS_SHOWN = 20
ATTEMPTS_SHOWN = 100
TRACE_LIMIT = 200
#: A group's size is counted up to this, then shown as "more than".
GROUP_COUNT_CAP = 10_000

#: The columns a link to another job needs (no payloads: they can be large).
REF_FIELDS = ("task_id", "name", "status", "created_at")
TRACE_FIELDS = (*REF_FIELDS, "sent_at", "started_at", "finished_at")


# --- Values -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobRef:
    """A link to another job. `status` is "" when only the id is known (its row was
    pruned by retention, or not recorded yet)."""

    task_id: str
    name: str = ""
    status: str = ""


@dataclass(frozen=True, slots=True)
class Summary:
    """The job's own columns, without its payloads (see `JobPage` for those)."""

    task_id: str
    name: str
    status: str
    queue: str
    priority: int | None
    worker: str
    attempts: int
    progress: int
    progress_message: str
    created_at: datetime
    sent_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    eta: datetime | None
    updated_at: datetime | None
    cancel_requested_at: datetime | None
    dead_lettered_at: datetime | None
    dead_letter_resolution: str
    dead_letter_resolved_at: datetime | None
    correlation_id: str
    fingerprint: str
    #: Seconds from sent (or created) to started: what the Tasks page calls wait.
    wait_seconds: float | None
    #: Seconds from started to finished, or to now while it runs (`running`).
    run_seconds: float | None

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def running(self) -> bool:
        return self.status == JobStatus.STARTED

    @property
    def parked_dead_letter(self) -> bool:
        return self.dead_lettered_at is not None and not self.dead_letter_resolution


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
        return _seconds(self.started_at, self.finished_at)


@dataclass(frozen=True, slots=True)
class Family:
    root: JobRef | None
    parent: JobRef | None
    children: tuple[JobRef, ...]
    more_children: bool
    group_id: str
    group_size: Tally | None
    retried_from: JobRef | None
    reruns: tuple[JobRef, ...]
    more_reruns: bool

    @property
    def parent_is_root(self) -> bool:
        """The parent is the workflow's first job (a chain's second link): one line."""
        return self.parent is not None and self.root is not None and self.parent == self.root

    @property
    def empty(self) -> bool:
        return not (
            self.root
            or self.parent
            or self.children
            or self.group_id
            or self.retried_from
            or self.reruns
        )


@dataclass(frozen=True, slots=True)
class TraceBar:
    """One job on the correlation trace: where its bar starts and how long it waits and
    runs, as percentages of the whole trace's span."""

    job: JobRef
    created_at: datetime
    offset: float
    wait: float
    run: float
    wait_seconds: float | None
    run_seconds: float | None
    current: bool

    @property
    def style(self) -> str:
        """Inline geometry (the only per-row values; colours come from the CSS classes).

        Formatted here, not in the template, so a locale's decimal comma never reaches CSS.
        """
        return f"margin-left:{self.offset:.3f}%;width:{max(self.wait + self.run, 0.4):.3f}%"

    @property
    def wait_share(self) -> str:
        """The waiting part's share of the bar's own width (CSS flex-basis)."""
        total = self.wait + self.run
        return f"{100 * self.wait / total:.3f}%" if total > 0 else "0%"


@dataclass(frozen=True, slots=True)
class Trace:
    correlation_id: str
    bars: tuple[TraceBar, ...]
    more: bool
    start: datetime | None
    span_seconds: float


@dataclass(frozen=True, slots=True)
class Button:
    """One action form on the page: it posts `action` for this job to the preview."""

    action: BulkAction
    label: str
    #: Destructive or irreversible (kill a process, delete a dead letter): red, and asks.
    danger: bool = False


#: The words on one job's buttons (BulkAction.label speaks of many jobs).
BUTTONS = {
    BulkAction.CANCEL: Button(BulkAction.CANCEL, "Cancel"),
    BulkAction.HARD_CANCEL: Button(BulkAction.HARD_CANCEL, "Hard-cancel", danger=True),
    BulkAction.RETRY: Button(BulkAction.RETRY, "Retry"),
    BulkAction.REPLAY: Button(BulkAction.REPLAY, "Replay"),
    BulkAction.PURGE: Button(BulkAction.PURGE, "Purge", danger=True),
}


@dataclass(frozen=True, slots=True)
class JobPage:
    summary: Summary
    timeline: tuple[Moment, ...]
    attempts: tuple[Attempt, ...]
    more_attempts: bool
    family: Family
    trace: Trace | None
    #: Redacted (dashboard.redaction): safe to show.
    args: Any
    kwargs: Any
    result: Any
    error: str
    traceback: str
    actions: tuple[Button, ...] = field(default=())


# --- Building ----------------------------------------------------------------------------


def load_summary(task_id: str, now: datetime) -> Summary | None:
    """The job's columns for the live fragment (no payloads), or None if unknown."""
    job = Job.objects.filter(task_id=task_id).defer("args", "kwargs", "result", "message").first()
    return None if job is None else summarize(job, now)


def load_page(task_id: str, allowed: Iterable[BulkAction], now: datetime) -> JobPage | None:
    """Everything the job page shows, or None when no job has this id."""
    job = Job.objects.filter(task_id=task_id).defer("message").first()
    if job is None:
        return None
    summary = summarize(job, now)
    attempt_rows = list(
        JobAttempt.objects.filter(task_id=task_id).order_by("number")[: ATTEMPTS_SHOWN + 1]
    )
    attempts = attempts_of(summary, attempt_rows[:ATTEMPTS_SHOWN])
    return JobPage(
        summary=summary,
        timeline=timeline_of(summary, attempts),
        attempts=attempts,
        more_attempts=len(attempt_rows) > ATTEMPTS_SHOWN,
        family=family_of(job),
        trace=trace_of(job, now),
        args=redact(job.args),
        kwargs=redact(job.kwargs),
        result=redact(job.result),
        error=job.error,
        traceback=job.traceback,
        actions=actions_for(summary, allowed),
    )


def summarize(job: Job, now: datetime) -> Summary:
    end = job.finished_at or (now if job.status == JobStatus.STARTED else None)
    return Summary(
        task_id=job.task_id,
        name=job.name,
        status=job.status,
        queue=job.queue,
        priority=job.priority,
        worker=job.worker,
        attempts=job.attempts,
        progress=job.progress,
        progress_message=job.progress_message,
        created_at=job.created_at,
        sent_at=job.sent_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        eta=job.eta,
        updated_at=job.updated_at,
        cancel_requested_at=job.cancel_requested_at,
        dead_lettered_at=job.dead_lettered_at,
        dead_letter_resolution=job.dead_letter_resolution,
        dead_letter_resolved_at=job.dead_letter_resolved_at,
        correlation_id=job.correlation_id,
        fingerprint=job.fingerprint,
        wait_seconds=_seconds(job.sent_at or job.created_at, job.started_at),
        run_seconds=_seconds(job.started_at, end),
    )


def actions_for(summary: Summary, allowed: Iterable[BulkAction]) -> tuple[Button, ...]:
    """The buttons this job shows: what applies to it now, among what the user may do.

    The same rules as tasks.operations.bulk.ELIGIBLE; the preview page re-checks them,
    so a button gone stale (the job finished meanwhile) only leads to "skipped".
    """
    applicable: list[BulkAction] = []
    if not summary.final:
        applicable += [BulkAction.CANCEL, BulkAction.HARD_CANCEL]
    if summary.status in RETRYABLE:
        applicable.append(BulkAction.RETRY)
    if summary.parked_dead_letter:
        applicable += [BulkAction.REPLAY, BulkAction.PURGE]
    permitted = set(allowed)
    return tuple(BUTTONS[action] for action in applicable if action in permitted)


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
    """The job's life in time order: created, sent, each attempt, and how it ended."""
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


def family_of(job: Job) -> Family:
    """Parent, root, children, group and reruns, each by an indexed key, each bounded."""
    root_id = job.root_id if job.root_id and job.root_id != job.task_id else ""
    parent_id = job.parent_id if job.parent_id != job.task_id else ""
    keyed = Q(task_id__in=[key for key in (root_id, parent_id) if key])
    if job.retried_from_id is not None:
        keyed |= Q(pk=job.retried_from_id)
    related = (
        {row.task_id: row for row in Job.objects.filter(keyed).order_by().only("id", *REF_FIELDS)}
        if root_id or parent_id or job.retried_from_id is not None
        else {}
    )
    retried_from = next(
        (_ref(row) for row in related.values() if row.pk == job.retried_from_id), None
    )

    # Children carry this job's root (or this job's id when it is the root): searched
    # inside the family's partial index; no ORDER BY, so the scan stops at the bound,
    # and the few found are sorted here.
    children_rows = list(
        Job.objects.family(job.root_id or job.task_id)
        .filter(parent_id=job.task_id)
        .exclude(task_id=job.task_id)
        .order_by()
        .only(*REF_FIELDS)[: CHILDREN_SHOWN + 1]
    )
    children = sorted(children_rows[:CHILDREN_SHOWN], key=lambda row: row.created_at)

    rerun_rows = list(
        Job.objects.filter(IS_A_RERUN, retried_from=job.pk)
        .order_by()
        .only(*REF_FIELDS)[: RERUNS_SHOWN + 1]
    )
    reruns = sorted(rerun_rows[:RERUNS_SHOWN], key=lambda row: row.created_at)

    return Family(
        root=_known(related, root_id),
        parent=_known(related, parent_id),
        children=tuple(_ref(row) for row in children),
        more_children=len(children_rows) > CHILDREN_SHOWN,
        group_id=job.group_id,
        group_size=(
            bounded_count(Job.objects.in_group(job.group_id), GROUP_COUNT_CAP)
            if job.group_id
            else None
        ),
        retried_from=retried_from,
        reruns=tuple(_ref(row) for row in reruns),
        more_reruns=len(rerun_rows) > RERUNS_SHOWN,
    )


def trace_of(job: Job, now: datetime) -> Trace | None:
    """Every job sharing this one's correlation id, on one time axis (the first 200 by
    creation). None when the job has no correlation id."""
    if not job.correlation_id:
        return None
    rows = list(
        Job.objects.correlated(job.correlation_id)
        .order_by("created_at", "id")
        .only(*TRACE_FIELDS)[: TRACE_LIMIT + 1]
    )
    shown = rows[:TRACE_LIMIT]
    if not shown:
        return Trace(job.correlation_id, (), False, None, 0.0)
    start = shown[0].created_at
    end = max(_end(row, now) for row in shown)
    span = max((end - start).total_seconds(), 0.001)

    def percent(moment: datetime) -> float:
        return max(0.0, min(100.0, 100 * (moment - start).total_seconds() / span))

    bars = []
    for row in shown:
        began = percent(row.created_at)
        started = percent(row.started_at) if row.started_at else percent(_end(row, now))
        ended = percent(_end(row, now))
        bars.append(
            TraceBar(
                job=_ref(row),
                created_at=row.created_at,
                offset=began,
                wait=max(0.0, started - began),
                run=max(0.0, ended - started) if row.started_at else 0.0,
                wait_seconds=_seconds(row.sent_at or row.created_at, row.started_at),
                run_seconds=_seconds(
                    row.started_at,
                    row.finished_at or (now if row.status == JobStatus.STARTED else None),
                ),
                current=row.task_id == job.task_id,
            )
        )
    return Trace(job.correlation_id, tuple(bars), len(rows) > TRACE_LIMIT, start, span)


# --- Helpers -----------------------------------------------------------------------------


def _end(row: Job, now: datetime) -> datetime:
    """Where a job's bar ends: when it finished, now while it is unfinished."""
    if row.finished_at:
        return row.finished_at
    if row.status in FINAL:
        return row.started_at or row.created_at
    return max(now, row.created_at)


def _ref(row: Job) -> JobRef:
    return JobRef(task_id=row.task_id, name=row.name, status=row.status)


def _known(rows: dict[str, Job], task_id: str) -> JobRef | None:
    if not task_id:
        return None
    row = rows.get(task_id)
    return _ref(row) if row is not None else JobRef(task_id)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


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
