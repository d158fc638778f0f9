"""Per task name over a window: how many finished, how many failed, how long they ran
and waited.

Counts and maxima come from JobTally, the run-time and wait-time percentiles from the
TimingTally histograms (dashboard.read.percentiles: estimates, interpolated inside a
histogram bucket, with the bucket's bounds). Both are read over the window's tally rows
(dashboard.read.windows: whole hours, and minutes at the ends of windows up to a day),
so a 30-day window reads about 720 rows per task and status, never a job row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Max, QuerySet, Sum
from django.utils import timezone

from dashboard.read.explore import query, statuses
from dashboard.read.percentiles import Estimate, bucket_label, bucket_range, percentile
from dashboard.read.status_counts import FINISHED
from dashboard.read.tally_rows import in_span
from dashboard.read.windows import tally_span
from tasks.models import JobStatus, JobTally, TimingTally
from tasks.observations import BUCKET_BOUNDS_MS, Measure


@dataclass(frozen=True, slots=True)
class Timing:
    """Run or wait times of a task's finished jobs: percentile estimates and the max."""

    p50: Estimate | None
    p95: Estimate | None
    max_ms: int | None
    mean_ms: float | None

    @property
    def max_seconds(self) -> float | None:
        return None if self.max_ms is None else self.max_ms / 1000

    @property
    def mean_seconds(self) -> float | None:
        return None if self.mean_ms is None else self.mean_ms / 1000


@dataclass(frozen=True, slots=True)
class TaskStats:
    name: str
    count: int
    """Jobs that finished in the window (succeeded, failed or revoked)."""
    succeeded: int
    failed: int
    revoked: int
    run: Timing
    wait: Timing
    q: str
    """The explorer filter of its finished jobs in the window."""
    failed_q: str
    """... and of its failed ones."""

    @property
    def failure_rate(self) -> float | None:
        """Failed / finished (None when none finished)."""
        return self.failed / self.count if self.count else None

    @property
    def failure_percent(self) -> float | None:
        rate = self.failure_rate
        return None if rate is None else 100 * rate


@dataclass(frozen=True, slots=True)
class TaskStatsTable:
    start: datetime
    """The window's actual start."""
    tasks: tuple[TaskStats, ...]


@dataclass(frozen=True, slots=True)
class HistogramBar:
    label: str
    low_ms: float
    high_ms: float | None
    count: int


def task_stats(
    span: timedelta, now: datetime | None = None, name: str | None = None
) -> TaskStatsTable:
    """Every task that finished jobs in the last `span` (or only `name`), busiest first."""
    window = tally_span(now or timezone.now(), span)
    tallies = JobTally.objects.filter(in_span(window))
    timings = TimingTally.objects.filter(in_span(window))
    if name is not None:
        tallies, timings = tallies.filter(name=name), timings.filter(name=name)
    per_status, sums = _job_sums(tallies)
    histograms = _histograms(timings)
    stats = [
        TaskStats(
            name=task,
            count=sum(counts.values()),
            succeeded=counts.get(JobStatus.SUCCESS, 0),
            failed=counts.get(JobStatus.FAILURE, 0),
            revoked=counts.get(JobStatus.REVOKED, 0),
            run=_timing(histograms.get((task, Measure.RUN), {}), *sums[task].run),
            wait=_timing(histograms.get((task, Measure.WAIT), {}), *sums[task].wait),
            q=query(statuses(*FINISHED), f"task:{task}", after=window.start),
            failed_q=query(statuses(JobStatus.FAILURE), f"task:{task}", after=window.start),
        )
        for task, counts in per_status.items()
    ]
    stats.sort(key=lambda s: (-s.count, s.name))
    return TaskStatsTable(window.start, tuple(stats))


@dataclass(slots=True)
class _Sums:
    """A task's run and wait totals, counts and maxima over its tally rows:
    (total ms, jobs with a time, max ms) each."""

    run: tuple[int, int, int] = (0, 0, 0)
    wait: tuple[int, int, int] = (0, 0, 0)


def _job_sums(tallies: QuerySet[JobTally]) -> tuple[dict[str, dict[str, int]], dict[str, _Sums]]:
    """Per task: jobs per status, and its run and wait sums (one grouped query)."""
    per_status: dict[str, dict[str, int]] = {}
    sums: dict[str, _Sums] = {}
    rows = (
        tallies.order_by()
        .values("name", "status")
        .annotate(
            jobs=Sum("count"),
            run_total=Sum("run_ms_total"),
            run_count=Sum("run_count"),
            run_max=Max("run_ms_max"),
            wait_total=Sum("wait_ms_total"),
            wait_count=Sum("wait_count"),
            wait_max=Max("wait_ms_max"),
        )
    )
    for row in rows:
        per_status.setdefault(row["name"], {})[row["status"]] = int(row["jobs"] or 0)
        task = sums.setdefault(row["name"], _Sums())
        task.run = _added(task.run, row["run_total"], row["run_count"], row["run_max"])
        task.wait = _added(task.wait, row["wait_total"], row["wait_count"], row["wait_max"])
    return per_status, sums


def _added(
    sums: tuple[int, int, int], total: int | None, count: int | None, top: int | None
) -> tuple[int, int, int]:
    return (sums[0] + int(total or 0), sums[1] + int(count or 0), max(sums[2], int(top or 0)))


def _histograms(timings: QuerySet[TimingTally]) -> dict[tuple[str, str], dict[int, int]]:
    """Per (task, measure): {bucket: jobs} (one grouped query)."""
    histograms: dict[tuple[str, str], dict[int, int]] = {}
    rows = timings.order_by().values("name", "measure", "bucket").annotate(jobs=Sum("count"))
    for row in rows:
        histogram = histograms.setdefault((row["name"], row["measure"]), {})
        histogram[row["bucket"]] = int(row["jobs"] or 0)
    return histograms


def _timing(histogram: dict[int, int], total: int, count: int, top: int) -> Timing:
    if not count:
        return Timing(None, None, None, None)
    return Timing(
        p50=percentile(histogram, 0.5, BUCKET_BOUNDS_MS, max_ms=top),
        p95=percentile(histogram, 0.95, BUCKET_BOUNDS_MS, max_ms=top),
        max_ms=top,
        mean_ms=total / count,
    )


def run_histogram(name: str, span: timedelta, now: datetime | None = None) -> list[HistogramBar]:
    """The run-time histogram of task `name` over the last `span`: its buckets from the
    fastest to the slowest non-empty one (empty ones between them included)."""
    window = tally_span(now or timezone.now(), span)
    counts = {
        row["bucket"]: int(row["jobs"] or 0)
        for row in TimingTally.objects.filter(in_span(window), name=name, measure=Measure.RUN)
        .order_by()
        .values("bucket")
        .annotate(jobs=Sum("count"))
    }
    used = [bucket for bucket, count in counts.items() if count > 0]
    if not used:
        return []
    bars = []
    for bucket in range(min(used), max(used) + 1):
        low, high = bucket_range(bucket, BUCKET_BOUNDS_MS)
        bars.append(
            HistogramBar(bucket_label(bucket, BUCKET_BOUNDS_MS), low, high, counts.get(bucket, 0))
        )
    return bars
