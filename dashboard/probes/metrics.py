"""The series of /metrics, read at scrape time from the database and the broker.

Why at scrape time, from shared state: a job is recorded by whichever worker host ran
it, and a scrape lands on whichever web process the load balancer picks. Counters kept
in process memory (prometheus-client's default registry) would count what one web
process saw; its multiprocess mode would still only add up the processes of one host
and lose everything at a restart. The tallies the recorder already keeps
(tasks.observations) are shared, survive restarts and are small, so every web
process answers the same numbers, and a scrape costs a handful of indexed queries
on tables of a few thousand rows, never a count over the job table
(docs/metrics.md).

`LayerCollector` is a prometheus-client custom collector: `render()` registers it in a
fresh `CollectorRegistry` per scrape, so nothing is kept between scrapes.

Counters and retention: "jobs finished" sums the tallies' day rows of the current UTC
month (the day row of today is up to date: the recorder adds every finished job to its
minute, hour and day rows in one statement). Day rows are pruned after 400 days, which
would make an all-time sum go down once a day; a sum that restarts at 0 on the 1st of
each month is a plain counter reset, which `rate()` and `increase()` handle. The
counter's `_created` sample says when it started.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, Max, Sum
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from tasks import operations
from tasks.conf import layer_settings
from tasks.models import Job, JobStatus, OutboxMessage, WorkerBeat
from tasks.observations import (
    BUCKET_BOUNDS_MS,
    BrokerLoss,
    JobTally,
    Measure,
    Period,
    TimingTally,
)

logger = logging.getLogger(__name__)

PREFIX = "tasklayer"
OTHER = "other"
UNKNOWN = "unknown"
DEAD_LETTER_QUEUE = "dead_letter"
#: Queues labelled besides the configured ones (TASKS_QUEUES) and the broker's: the
#: busiest few; the rest are "other".
MAX_OTHER_QUEUES = 20
#: The most rows read to count jobs waiting to retry, parked dead letters, and messages
#: waiting to be published: each count stops there, so a storm of them cannot make a
#: scrape slow. docs/metrics.md says so for each series.
RETRYING_CAP = 10_000
DEAD_LETTER_CAP = 100_000
PUBLISH_CAP = 100_000
#: A worker that stopped beating without shutting down cleanly counts as lost for this
#: long, then is forgotten (a host removed for good should not alert forever).
LOST_FOR = timedelta(days=1)
BUCKET_BOUNDS_S: tuple[str, ...] = tuple(floatToGoString(ms / 1000) for ms in BUCKET_BOUNDS_MS)


def month_start(now: datetime) -> datetime:
    """Midnight UTC on the first of `now`'s month: where the counters start."""
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def kept_names(
    counts: Mapping[str, float], limit: int, always: Iterable[str] = ()
) -> frozenset[str]:
    """The names a label keeps: `always`, then the busiest others up to `limit` (ties by
    name, so two scrapes agree). Every other name becomes "other"."""
    keep = set(always)
    busiest = sorted((name for name in counts if name not in keep), key=lambda n: (-counts[n], n))
    return frozenset(keep | set(busiest[:limit]))


def capped(name: str, kept: frozenset[str]) -> str:
    if not name:
        return UNKNOWN
    return name if name in kept else OTHER


def cumulative(counts: Sequence[float]) -> list[tuple[str, float]]:
    """Prometheus buckets from per-bucket counts (index len(BOUNDS) is the open one)."""
    buckets, running = [], 0.0
    for bound, count in zip(BUCKET_BOUNDS_S, counts, strict=False):
        running += count
        buckets.append((bound, running))
    buckets.append(("+Inf", float(sum(counts))))
    return buckets


@dataclass(frozen=True, slots=True)
class Labels:
    """Which task and queue names keep their label value in this scrape."""

    tasks: frozenset[str]
    queues: frozenset[str]

    def task(self, name: str) -> str:
        return capped(name, self.tasks)

    def queue(self, name: str) -> str:
        return capped(name, self.queues)


def is_dead_letter_queue(state: Any) -> bool:
    """Letters wait there on purpose: no time to drain, no backlog verdict."""
    return bool(getattr(state, "dead_letter", False) or state.name == DEAD_LETTER_QUEUE)


def queue_states_or_none() -> list[Any] | None:
    """`tasks.operations.queue_states()` (the queues page's reader), or None before it
    exists in this checkout."""
    reader: Callable[[], list[Any]] | None = getattr(operations, "queue_states", None)
    return None if reader is None else reader()


class LayerCollector:
    """Yields every series of /metrics from the database and the broker."""

    def __init__(
        self,
        now: datetime | None = None,
        queue_states: Callable[[], list[Any] | None] = queue_states_or_none,
    ) -> None:
        self.now = now or timezone.now()
        self.since = month_start(self.now)
        self.queue_states = queue_states
        # Filled in as the parts are read: the broker's queue names label the job series,
        # the job series' label choices the workers' queues.
        self._queue_names: set[str] = set()
        self.labels: Labels | None = None

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            f"{PREFIX}_collector_up",
            "1 when this part of the scrape was read, 0 when it failed (see the web log).",
            labels=["part"],
        )
        parts: tuple[tuple[str, Callable[[], list[Metric]]], ...] = (
            ("queues", self._queues),
            ("jobs", self._jobs),
            ("workers", self._workers),
            ("publish", self._publish),
            ("recovery", self._recovery),
        )
        for part, read in parts:
            started = time.perf_counter()
            try:
                families = read()
            except Exception:
                logger.exception("/metrics: could not read %s", part)
                up.add_metric([part], 0)
                continue
            logger.debug("/metrics: %s in %.1f ms", part, (time.perf_counter() - started) * 1000)
            up.add_metric([part], 1)
            yield from families
        yield up

    # --- jobs: the tallies, dead letters, retries -------------------------------------------

    def _labels(self, finished: Mapping[tuple[str, str, str], Mapping[str, Any]]) -> Labels:
        settings = layer_settings()
        by_task: dict[str, float] = defaultdict(float)
        by_queue: dict[str, float] = defaultdict(float)
        for (name, queue, _status), sums in finished.items():
            by_task[name] += sums["count"]
            by_queue[queue] += sums["count"]
        always_queues = {*settings.queues, *self._queue_names, DEAD_LETTER_QUEUE}
        return Labels(
            tasks=kept_names(by_task, settings.metrics_max_tasks),
            queues=kept_names(by_queue, MAX_OTHER_QUEUES, always_queues),
        )

    def _jobs(self) -> list[Metric]:
        finished = {
            (row["name"], row["queue"], row["status"]): row
            for row in JobTally.objects.filter(period=Period.DAY, start__gte=self.since)
            .order_by()
            .values("name", "queue", "status")
            .annotate(count=Sum("count"), run_ms=Sum("run_ms_total"), wait_ms=Sum("wait_ms_total"))
        }
        labels = self._labels(finished)
        self.labels = labels
        counter = CounterMetricFamily(
            f"{PREFIX}_jobs_finished",
            "Jobs that reached a final status (SUCCESS, FAILURE, REVOKED) since the start "
            "of the month (UTC); restarts at 0 on the 1st.",
            labels=["task", "queue", "status"],
        )
        totals: dict[tuple[str, str, str], float] = defaultdict(float)
        seconds: dict[tuple[str, str], float] = defaultdict(float)
        for (name, queue, status), row in finished.items():
            task = labels.task(name)
            totals[(task, labels.queue(queue), status)] += row["count"]
            seconds[(task, Measure.RUN)] += (row["run_ms"] or 0) / 1000
            seconds[(task, Measure.WAIT)] += (row["wait_ms"] or 0) / 1000
        created = self.since.timestamp()
        for key, value in sorted(totals.items()):
            counter.add_metric(list(key), value, created=created)
        return [
            counter,
            *self._histograms(labels, seconds),
            self._dead_letters(labels),
            self._retrying(labels),
        ]

    def _histograms(self, labels: Labels, seconds: Mapping[tuple[str, str], float]) -> list[Metric]:
        width = len(BUCKET_BOUNDS_MS) + 1
        counts: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0] * width)
        for row in (
            TimingTally.objects.filter(period=Period.DAY, start__gte=self.since)
            .order_by()
            .values("name", "measure", "bucket")
            .annotate(n=Sum("count"))
        ):
            if 0 <= row["bucket"] < width:
                counts[(labels.task(row["name"]), row["measure"])][row["bucket"]] += row["n"]
        families: list[Metric] = []
        for measure, title in (
            (Measure.RUN, "run time (started to finished)"),
            (Measure.WAIT, "wait time (sent to started: waiting for a worker)"),
        ):
            family = HistogramMetricFamily(
                f"{PREFIX}_job_{measure}_seconds",
                f"Finished jobs by {title}, since the start of the month (UTC).",
                labels=["task"],
            )
            for (task, kind), per_bucket in sorted(counts.items()):
                if kind == measure:
                    family.add_metric([task], cumulative(per_bucket), seconds.get((task, kind), 0))
            families.append(family)
        return families

    def _grouped(self, sql: str, params: Sequence[Any]) -> list[tuple[str, str, int]]:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [(name, queue, count) for name, queue, count in cursor.fetchall()]

    def _dead_letters(self, labels: Labels) -> Metric:
        family = GaugeMetricFamily(
            f"{PREFIX}_dead_letters",
            f"Dead letters waiting (parked, not replayed or purged); counted up to "
            f"{DEAD_LETTER_CAP:,}.",
            labels=["task", "queue"],
        )
        table = Job._meta.db_table
        # The partial index job_dead_lettered holds exactly the rows with the condition.
        rows = self._grouped(
            f"SELECT name, queue, COUNT(*) FROM (SELECT name, queue FROM {table} "  # noqa: S608
            "WHERE dead_lettered_at IS NOT NULL AND dead_letter_resolution = '' LIMIT %s) "
            "AS parked GROUP BY name, queue",
            [DEAD_LETTER_CAP],
        )
        self._add_grouped(family, labels, rows)
        return family

    def _retrying(self, labels: Labels) -> Metric:
        family = GaugeMetricFamily(
            f"{PREFIX}_jobs_retrying",
            f"Jobs waiting for their next attempt after a retryable error (status RETRY); "
            f"counted up to {RETRYING_CAP:,}.",
            labels=["task", "queue"],
        )
        table = Job._meta.db_table
        rows = self._grouped(
            f"SELECT name, queue, COUNT(*) FROM (SELECT name, queue FROM {table} "  # noqa: S608
            "WHERE status = %s LIMIT %s) AS retrying GROUP BY name, queue",
            [JobStatus.RETRY.value, RETRYING_CAP],
        )
        self._add_grouped(family, labels, rows)
        return family

    @staticmethod
    def _add_grouped(
        family: GaugeMetricFamily, labels: Labels, rows: Iterable[tuple[str, str, int]]
    ) -> None:
        sums: dict[tuple[str, str], float] = defaultdict(float)
        for name, queue, count in rows:
            sums[(labels.task(name), labels.queue(queue))] += count
        for key, value in sorted(sums.items()):
            family.add_metric(list(key), value)

    # --- workers ----------------------------------------------------------------------------

    def _workers(self) -> list[Metric]:
        online = operations.workers_online(self.now)
        online_names = {beat.hostname for beat in online}
        recent = self.now - LOST_FOR
        lost = (
            WorkerBeat.objects.filter(stopped_at__isnull=True, last_seen_at__gte=recent)
            .exclude(hostname__in=online_names)
            .count()
        )
        queues = self.labels
        per_queue: dict[str, float] = defaultdict(float)
        for beat in online:
            for queue in beat.queues or ():
                name = queues.queue(queue) if queues else queue
                per_queue[name] += 1
        by_queue = GaugeMetricFamily(
            f"{PREFIX}_workers_online_by_queue",
            "Live workers consuming each queue.",
            labels=["queue"],
        )
        for queue, count in sorted(per_queue.items()):
            by_queue.add_metric([queue], count)
        return [
            GaugeMetricFamily(
                f"{PREFIX}_workers_online",
                "Workers whose heartbeat is recent and that did not shut down.",
                value=len(online),
            ),
            GaugeMetricFamily(
                f"{PREFIX}_worker_processes",
                "Pool processes (concurrency) of the live workers: jobs they can run at once.",
                value=sum(beat.concurrency for beat in online),
            ),
            GaugeMetricFamily(
                f"{PREFIX}_workers_lost",
                "Workers that stopped beating without a clean shutdown in the last day.",
                value=lost,
            ),
            by_queue,
        ]

    # --- queues: the broker -------------------------------------------------------------

    def _queues(self) -> list[Metric]:
        states = self.queue_states()
        if states is None:
            return []
        self._queue_names = {state.name for state in states}
        helps = {
            "depth": "Messages waiting in the queue on the broker (priority sub-queues included).",
            "oldest_job_age_seconds": "Age of the oldest message waiting in the queue.",
            "latency_seconds": "How long the job a worker takes now has waited.",
            "drain_seconds": "Time to empty the queue at its recent rate; +Inf when it "
            "holds messages and is not draining, 0 when empty.",
            "in_per_minute": "Jobs published to the queue per minute, recently.",
            "out_per_minute": "Jobs taken from the queue per minute, recently.",
            "paused": "1 while an operator has paused the queue.",
            "consumers": "Live workers consuming the queue.",
        }
        families = {
            key: GaugeMetricFamily(f"{PREFIX}_queue_{key}", helps[key], labels=["queue"])
            for key in helps
        }
        broker_up = 1
        for state in states:
            queue = [state.name]
            if state.depth is None:
                broker_up = 0
            else:
                families["depth"].add_metric(queue, state.depth)
            if state.depth is not None and not is_dead_letter_queue(state):
                drain = state.drain_seconds
                if drain is None:
                    drain = math.inf if state.depth > 0 else 0.0
                families["drain_seconds"].add_metric(queue, drain)
            for key, value in (
                ("oldest_job_age_seconds", state.oldest_age_seconds),
                ("latency_seconds", state.latency_seconds),
            ):
                if value is not None:
                    families[key].add_metric(queue, value)
            families["in_per_minute"].add_metric(queue, state.in_per_minute)
            families["out_per_minute"].add_metric(queue, state.out_per_minute)
            families["paused"].add_metric(queue, 1 if state.paused else 0)
            families["consumers"].add_metric(queue, state.consumers)
        up = GaugeMetricFamily(
            f"{PREFIX}_broker_up", "1 when the broker answered this scrape.", value=broker_up
        )
        return [*families.values(), up]

    # --- publishing: the relay's rows and the outbox ------------------------------------

    def _publish(self) -> list[Metric]:
        due = GaugeMetricFamily(
            f"{PREFIX}_publish_due",
            f"Jobs committed and due to be published, not published yet; counted up to "
            f"{PUBLISH_CAP:,}. path=relay: .delay() inside a transaction; path=outbox: held "
            f"jobs, unique jobs, retries whose re-publish failed.",
            labels=["path"],
        )
        oldest = GaugeMetricFamily(
            f"{PREFIX}_publish_oldest_due_seconds",
            "How long the longest-due message has waited to be published (0: none due). "
            "Growing: nothing is publishing (broker down, or no worker for its queue).",
            labels=["path"],
        )
        failed = GaugeMetricFamily(
            f"{PREFIX}_publish_failed",
            f"Messages waiting to be published again after a failed publish; counted up to "
            f"{PUBLISH_CAP:,}.",
            labels=["path"],
        )
        job_table, outbox_table = Job._meta.db_table, OutboxMessage._meta.db_table
        now = connection.ops.adapt_datetimefield_value(self.now)
        for path, table, column, failed_where in (
            ("relay", job_table, "publish_due_at", "publish_due_at IS NOT NULL AND error <> ''"),
            ("outbox", outbox_table, "due_at", "attempts > 0"),
        ):
            with connection.cursor() as cursor:
                # Oldest first through the index on the due column (a partial one for
                # the job table, empty in a steady state), at most PUBLISH_CAP rows.
                cursor.execute(
                    f"SELECT COUNT(*), MIN({column}) FROM (SELECT {column} FROM {table} "  # noqa: S608
                    f"WHERE {column} IS NOT NULL AND {column} <= %s ORDER BY {column} "
                    "LIMIT %s) AS due",
                    [now, PUBLISH_CAP],
                )
                count, first = cursor.fetchone()
                cursor.execute(
                    f"SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE {failed_where} "  # noqa: S608
                    "LIMIT %s) AS failed",
                    [PUBLISH_CAP],
                )
                (failures,) = cursor.fetchone()
            due.add_metric([path], count)
            oldest.add_metric([path], _seconds_since(first, self.now))
            failed.add_metric([path], failures)
        return [due, oldest, failed]

    # --- recovery: what the layer published again after the broker lost its data --------

    def _recovery(self) -> list[Metric]:
        # The BrokerLoss rows: one per loss, a handful a year, never pruned, and
        # `republished` only grows while a loss is handled. So both sums are counters
        # from the first loss on (no monthly restart like the tallies'), and reading them
        # is one aggregate over a tiny table. Summing Job.recoveries instead would read
        # the job table and go down as retention prunes jobs.
        found = BrokerLoss.objects.aggregate(
            losses=Count("id"), jobs=Sum("republished"), last=Max("detected_at")
        )
        families: list[Metric] = [
            CounterMetricFamily(
                f"{PREFIX}_broker_losses",
                "Times the broker was found to have lost its data (restart without "
                "persistence, failover to an empty replica, flush) or its last writes.",
                value=found["losses"] or 0,
            ),
            CounterMetricFamily(
                f"{PREFIX}_jobs_recovered",
                "Jobs the layer published again from their rows because the broker lost them.",
                value=found["jobs"] or 0,
            ),
        ]
        if found["last"] is not None:
            families.append(
                GaugeMetricFamily(
                    f"{PREFIX}_broker_last_loss_timestamp_seconds",
                    "When the latest broker loss was detected (Unix time); absent if none.",
                    value=found["last"].timestamp(),
                )
            )
        return families


def _seconds_since(value: Any, now: datetime) -> float:
    """Seconds from a timestamp the database returned (SQLite: a string) to `now`."""
    if value is None:
        return 0.0
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    return max(0.0, (now - value).total_seconds())


def render(collector: LayerCollector | None = None) -> bytes:
    """The exposition text of one scrape (a registry of its own: nothing outlives it)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector or LayerCollector())
    return generate_latest(registry)
