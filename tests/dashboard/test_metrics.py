"""/metrics: parsed with Prometheus' own text parser, its numbers match the rows a real
worker recorded; the task label is capped; only the token (or a staff session, or
localhost in DEBUG) may read it."""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db.models import F, Sum
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from dashboard.probes.metrics import (
    BUCKET_BOUNDS_S,
    OTHER,
    LayerCollector,
    cumulative,
    kept_names,
    month_start,
    render,
)
from demo.tasks import always_fail, noop
from tasks.models import Job, JobStatus, OutboxMessage
from tasks.observations import JobTally, Period, TimingTally, WorkerBeat
from tasks.runtime import heartbeat
from tests.support.jobs import wait_for_jobs
from tests.support.worker import WorkerProcess

TOKEN = "scrape-token-0123456789abcdef"
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}


def wait_until_online(hostname: str) -> None:
    deadline = time.monotonic() + 3 * heartbeat.interval() + 5
    while hostname not in {beat.hostname for beat in heartbeat.online()}:
        assert time.monotonic() < deadline, f"{hostname} sent no heartbeat"
        time.sleep(0.2)


def scrape(client: Client, **headers: Any) -> dict[str, Any]:
    response = client.get("/metrics", **(headers or AUTH))
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        family.name: family for family in text_string_to_metric_families(response.content.decode())
    }


def samples(families: dict[str, Any], family: str, sample: str | None = None) -> dict[Any, float]:
    """{frozenset(labels): value} of one sample name of a family."""
    wanted = sample or family
    return {
        frozenset(s.labels.items()): s.value for s in families[family].samples if s.name == wanted
    }


def key(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


# --- what a real worker recorded ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@override_settings(TASKS_METRICS_TOKEN=TOKEN)
def test_metrics_counts_match_the_rows_a_real_worker_recorded(
    live_worker: WorkerProcess,
) -> None:
    ids = [noop.delay(i).id for i in range(12)]
    ids += [always_fail.delay("metrics test").id for _ in range(2)]
    jobs = wait_for_jobs(ids, timeout=60)
    assert Counter(job.status for job in jobs) == {JobStatus.SUCCESS: 12, JobStatus.FAILURE: 2}
    # Transactional tests flush the tables after each test: the session worker's
    # heartbeat row is back only after its next beat.
    wait_until_online(live_worker.name)

    families = scrape(Client())

    # Finished jobs by task, queue and status: every finished row of the month, once.
    finished = samples(families, "tasklayer_jobs_finished", "tasklayer_jobs_finished_total")
    rows = Counter(
        (job.name, job.queue, job.status)
        for job in Job.objects.finished().filter(finished_at__gte=month_start(timezone.now()))
    )
    assert rows[("tasks.demo.noop", "default", "SUCCESS")] >= 12
    assert {
        (dict(labels)["task"], dict(labels)["queue"], dict(labels)["status"]): value
        for labels, value in finished.items()
    } == {k: float(v) for k, v in rows.items()}
    created = samples(families, "tasklayer_jobs_finished_created")
    assert set(created.values()) == {month_start(timezone.now()).timestamp()}

    # Run-time histogram: _count is the jobs with a run time, the buckets are cumulative,
    # _sum is the tallies' total in seconds.
    noop_jobs = Job.objects.filter(name="tasks.demo.noop", status=JobStatus.SUCCESS)
    run = samples(families, "tasklayer_job_run_seconds", "tasklayer_job_run_seconds_count")
    assert run[key(task="tasks.demo.noop")] == noop_jobs.exclude(started_at=None).count()
    buckets = {
        dict(labels)["le"]: value
        for labels, value in samples(
            families, "tasklayer_job_run_seconds", "tasklayer_job_run_seconds_bucket"
        ).items()
        if dict(labels)["task"] == "tasks.demo.noop"
    }
    assert list(buckets) == [*BUCKET_BOUNDS_S, "+Inf"]
    values = list(buckets.values())
    assert values == sorted(values)
    assert values[-1] == run[key(task="tasks.demo.noop")]
    run_ms = JobTally.objects.filter(period=Period.DAY, name="tasks.demo.noop").aggregate(
        total=Sum("run_ms_total")
    )["total"]
    total = samples(families, "tasklayer_job_run_seconds", "tasklayer_job_run_seconds_sum")
    assert total[key(task="tasks.demo.noop")] == pytest.approx(run_ms / 1000)
    # A wait time needs the job's sent time when it finishes: a SENT event that arrives
    # after the final one (it can, on RabbitMQ) leaves that job out of the wait tallies.
    wait = samples(families, "tasklayer_job_wait_seconds", "tasklayer_job_wait_seconds_count")
    wait_count = JobTally.objects.filter(period=Period.DAY, name="tasks.demo.noop").aggregate(
        total=Sum("wait_count")
    )["total"]
    assert wait[key(task="tasks.demo.noop")] == wait_count
    assert 0 < wait_count <= noop_jobs.exclude(sent_at=None).count()

    # Dead letters waiting: the parked rows.
    dead = samples(families, "tasklayer_dead_letters")
    parked = Counter((j.name, j.queue) for j in Job.objects.parked_dead_letters())
    assert parked[("tasks.demo.always_fail", "default")] == 2
    assert {(dict(k)["task"], dict(k)["queue"]): v for k, v in dead.items()} == {
        k: float(v) for k, v in parked.items()
    }

    # Workers online: the session worker's heartbeat, its queues and processes.
    assert samples(families, "tasklayer_workers_online")[frozenset()] >= 1
    by_queue = samples(families, "tasklayer_workers_online_by_queue")
    assert by_queue[key(queue="default")] >= 1
    assert samples(families, "tasklayer_worker_processes")[frozenset()] >= 2

    # Nothing is waiting to be published; every part of the scrape was read.
    assert samples(families, "tasklayer_publish_due") == {
        key(path="relay"): 0.0,
        key(path="outbox"): 0.0,
    }
    up = samples(families, "tasklayer_collector_up")
    assert up
    assert all(value == 1 for value in up.values()), up


# --- the collector on rows written here -------------------------------------------------------


def tally(name: str, count: int, *, status: str = "SUCCESS", queue: str = "default") -> None:
    today = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    JobTally.objects.create(
        period=Period.DAY,
        start=today,
        name=name,
        queue=queue,
        status=status,
        count=count,
        run_ms_total=count * 100,
        run_count=count,
    )
    bucket, _ = TimingTally.objects.get_or_create(
        period=Period.DAY, start=today, name=name, measure="run", bucket=4
    )
    TimingTally.objects.filter(pk=bucket.pk).update(count=F("count") + count)


def parse(text: bytes) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text.decode())}


def no_queues() -> None:
    return None


@pytest.mark.django_db
@override_settings(TASKS_METRICS_MAX_TASKS=3)
def test_the_task_label_keeps_the_busiest_names_and_sums_the_rest_as_other() -> None:
    for k in range(10):
        tally(f"app.tasks.t{k}", 10 + k)
    # Last month's rows are not this month's counter.
    JobTally.objects.create(
        period=Period.DAY,
        start=month_start(timezone.now()) - timedelta(days=1),
        name="app.tasks.t0",
        queue="default",
        status="SUCCESS",
        count=1000,
    )
    families = parse(render(LayerCollector(queue_states=no_queues)))
    finished = samples(families, "tasklayer_jobs_finished", "tasklayer_jobs_finished_total")
    by_task = {dict(labels)["task"]: value for labels, value in finished.items()}
    assert by_task == {
        "app.tasks.t9": 19,
        "app.tasks.t8": 18,
        "app.tasks.t7": 17,
        OTHER: sum(10 + k for k in range(7)),
    }
    histogram_tasks = {
        dict(labels)["task"]
        for labels in samples(
            families, "tasklayer_job_run_seconds", "tasklayer_job_run_seconds_count"
        )
    }
    assert histogram_tasks == {"app.tasks.t9", "app.tasks.t8", "app.tasks.t7", OTHER}
    count = samples(families, "tasklayer_job_run_seconds", "tasklayer_job_run_seconds_count")
    assert count[key(task=OTHER)] == sum(10 + k for k in range(7))


@pytest.mark.django_db
def test_an_unknown_queue_beyond_the_cap_is_other_and_configured_queues_keep_their_name() -> None:
    for k in range(25):
        tally("app.tasks.one", 1, queue=f"tenant-{k:02d}")
    tally("app.tasks.one", 1, queue="low")
    families = parse(render(LayerCollector(queue_states=no_queues)))
    queues = {
        dict(labels)["queue"]
        for labels in samples(families, "tasklayer_jobs_finished", "tasklayer_jobs_finished_total")
    }
    assert "low" in queues
    assert OTHER in queues
    assert len(queues) == 20 + 2


@dataclass(frozen=True)
class FakeQueueState:
    """tasks.operations.QueueState's fields (the queues helper's public API)."""

    name: str
    depth: int | None
    oldest_age_seconds: float | None
    in_per_minute: float
    out_per_minute: float
    latency_seconds: float | None
    drain_seconds: float | None
    paused: bool
    consumers: int


@pytest.mark.django_db
def test_queue_series_come_from_the_queue_states() -> None:
    states = [
        FakeQueueState("default", 120, 30.5, 60.0, 30.0, 2.0, 240.0, False, 2),
        FakeQueueState("low", 5, 600.0, 1.0, 0.0, None, None, True, 0),
        FakeQueueState("high", 0, None, 0.0, 0.0, None, None, False, 1),
    ]
    families = parse(render(LayerCollector(queue_states=lambda: states)))
    assert samples(families, "tasklayer_queue_depth") == {
        key(queue="default"): 120,
        key(queue="low"): 5,
        key(queue="high"): 0,
    }
    drain = samples(families, "tasklayer_queue_drain_seconds")
    assert drain[key(queue="default")] == 240
    assert math.isinf(drain[key(queue="low")])  # holds messages, not draining
    assert drain[key(queue="high")] == 0
    assert samples(families, "tasklayer_queue_oldest_job_age_seconds") == {
        key(queue="default"): 30.5,
        key(queue="low"): 600.0,
    }
    assert samples(families, "tasklayer_queue_paused")[key(queue="low")] == 1
    assert samples(families, "tasklayer_queue_consumers")[key(queue="default")] == 2
    assert samples(families, "tasklayer_broker_up")[frozenset()] == 1

    down = [FakeQueueState("default", None, None, 0.0, 0.0, None, None, False, 0)]
    families = parse(render(LayerCollector(queue_states=lambda: down)))
    assert samples(families, "tasklayer_broker_up")[frozenset()] == 0
    assert samples(families, "tasklayer_queue_depth") == {}


@pytest.mark.django_db
def test_a_part_that_fails_is_reported_and_the_others_still_answer() -> None:
    def broken() -> None:
        raise ConnectionError("broker gone")

    families = parse(render(LayerCollector(queue_states=broken)))
    up = samples(families, "tasklayer_collector_up")
    assert up[key(part="queues")] == 0
    assert up[key(part="jobs")] == 1
    assert "tasklayer_jobs_finished" in families


@pytest.mark.django_db
def test_publish_failures_and_lost_workers_are_counted() -> None:
    now = timezone.now()
    OutboxMessage.objects.create(
        task_id="t-failed",
        name="app.tasks.x",
        due_at=now + timedelta(seconds=30),
        attempts=2,
        last_error="OperationalError: broker down",
        created_at=now,
    )
    OutboxMessage.objects.create(
        task_id="t-due", name="app.tasks.x", due_at=now - timedelta(seconds=90), created_at=now
    )
    WorkerBeat.objects.create(
        hostname="gone@host",
        pid=1,
        started_at=now - timedelta(hours=1),
        last_seen_at=now - timedelta(minutes=5),
    )
    WorkerBeat.objects.create(
        hostname="long-gone@host",
        pid=2,
        started_at=now - timedelta(days=9),
        last_seen_at=now - timedelta(days=8),
    )
    families = parse(render(LayerCollector(now=now, queue_states=no_queues)))
    assert samples(families, "tasklayer_publish_failed")[key(path="outbox")] == 1
    assert samples(families, "tasklayer_publish_due")[key(path="outbox")] == 1
    oldest = samples(families, "tasklayer_publish_oldest_due_seconds")[key(path="outbox")]
    assert 89 <= oldest <= 91
    assert samples(families, "tasklayer_workers_lost")[frozenset()] == 1


# --- pure helpers -----------------------------------------------------------------------------


def test_counters_start_at_the_first_of_the_month_in_utc() -> None:
    moment = datetime(2025, 3, 17, 13, 5, tzinfo=UTC)
    assert month_start(moment) == datetime(2025, 3, 1, tzinfo=UTC)


def test_buckets_are_cumulative_and_the_open_one_is_inf() -> None:
    counts = [0.0] * (len(BUCKET_BOUNDS_S) + 1)
    counts[0], counts[3], counts[-1] = 1, 2, 4
    buckets = cumulative(counts)
    assert buckets[0] == ("0.005", 1)
    assert buckets[3] == ("0.05", 3)
    assert buckets[-2] == ("3600.0", 3)
    assert buckets[-1] == ("+Inf", 7)


def test_kept_names_are_the_busiest_with_ties_by_name() -> None:
    assert kept_names({"a": 1, "b": 5, "c": 5, "d": 0}, 2) == {"b", "c"}
    assert kept_names({"a": 1, "b": 5}, 1, always={"z"}) == {"b", "z"}


# --- who may read ---------------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(TASKS_METRICS_TOKEN=TOKEN, DEBUG=False)
def test_the_token_is_required_in_production() -> None:
    client = Client()
    missing = client.get("/metrics")  # the test client comes from 127.0.0.1: not enough
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    assert client.get("/metrics", **AUTH).status_code == 200


@pytest.mark.django_db
@override_settings(TASKS_METRICS_TOKEN="", DEBUG=False)
def test_production_without_a_token_refuses_every_scraper() -> None:
    client = Client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 403


@pytest.mark.django_db
@override_settings(TASKS_METRICS_TOKEN="", DEBUG=True)
def test_localhost_may_read_in_debug_and_nobody_else_without_credentials() -> None:
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="::1").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="10.0.0.7").get("/metrics").status_code == 401


@pytest.mark.django_db
@override_settings(TASKS_METRICS_TOKEN="", DEBUG=False)
def test_a_staff_operator_who_may_view_the_dashboard_may_read_it(
    read_only_client: Client, staff_without_view_client: Client
) -> None:
    assert read_only_client.get("/metrics").status_code == 200
    assert staff_without_view_client.get("/metrics").status_code == 401
