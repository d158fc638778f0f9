"""The tasks pages against known rows: per task counts, failure rate and run and wait
time estimates over a window, and a task's histogram, throughput and failure groups."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from dashboard.read.task_stats import task_stats
from dashboard.read.windows import DAY, HOUR
from dashboard.templatetags.dashboard_tags import duration
from tasks.models import JobStatus
from tests.dashboard.test_overview import admin_client, chart, explorer_query, finish

pytestmark = pytest.mark.django_db

FAST, SLOW, WAIT = timedelta(milliseconds=200), timedelta(seconds=3), timedelta(seconds=2)


@pytest.fixture
def known_rows() -> None:
    """billing.charge: in the last hour 3 succeeded and 1 failed (200 ms each), 3 hours
    ago 4 succeeded (3 s each), all after waiting 2 s; mail.send: 1 in the last hour."""
    now = timezone.now()
    for i in range(3):
        finish(f"b{i}", JobStatus.SUCCESS, now - timedelta(minutes=5), run=FAST, wait=WAIT)
    finish("b-bad", JobStatus.FAILURE, now - timedelta(minutes=5), run=FAST, wait=WAIT)
    for i in range(4):
        finish(f"b-slow{i}", JobStatus.SUCCESS, now - timedelta(hours=3), run=SLOW, wait=WAIT)
    finish(
        "m1",
        JobStatus.SUCCESS,
        now - timedelta(minutes=7),
        name="mail.send",
        run=timedelta(milliseconds=50),
        wait=timedelta(milliseconds=5),
    )


def test_the_read_model_over_the_last_hour_and_day(known_rows: None) -> None:
    hour = {t.name: t for t in task_stats(HOUR).tasks}
    billing = hour["billing.charge"]
    assert (billing.count, billing.succeeded, billing.failed, billing.revoked) == (4, 3, 1, 0)
    assert billing.failure_rate == 0.25
    assert billing.run.max_ms == 200
    assert billing.run.mean_ms == 200
    # All four in the (100, 250] ms bucket, whose top the max narrows to 200 ms.
    assert billing.run.p50 is not None
    assert billing.run.p95 is not None
    assert (billing.run.p50.ms, billing.run.p50.low_ms, billing.run.p50.high_ms) == (150, 100, 200)
    assert billing.run.p95.ms == pytest.approx(195)
    assert billing.wait.p50 is not None
    assert billing.wait.p50.ms == 1500
    assert hour["mail.send"].count == 1

    day = task_stats(DAY)
    assert [t.name for t in day.tasks] == ["billing.charge", "mail.send"]  # busiest first
    billing = day.tasks[0]
    assert (billing.count, billing.failed, billing.failure_rate) == (8, 1, 0.125)
    assert billing.run.max_ms == 3000
    assert billing.run.p50 is not None
    assert billing.run.p95 is not None
    assert billing.run.p50.ms == 250  # rank 4 of 8: the top of the fast bucket
    assert billing.run.p95.ms == pytest.approx(2950)  # 2500 + 0.9 * (3000 - 2500)


def test_the_list_shows_each_task_with_links(known_rows: None) -> None:
    html = admin_client().get("/dashboard/tasks/").content.decode()
    row = re.search(r'<tr data-task="billing.charge">(.*?)</tr>', html, re.S)
    assert row
    cells = dict(re.findall(r'<td class="num" data-col="([\w-]+)">(.*?)</td>', row.group(1), re.S))
    text = {key: re.sub(r"<[^>]+>", "", value).strip() for key, value in cells.items()}
    day = task_stats(DAY).tasks[0]
    assert day.run.p50
    assert day.run.p95
    assert day.wait.p50
    assert day.wait.p95
    assert text == {
        "count": "8",
        "failed": "1",
        "rate": "12.5%",
        "run-p50": duration(day.run.p50.seconds),
        "run-p95": duration(day.run.p95.seconds),
        "run-max": "3.0 s",
        "wait-p50": duration(day.wait.p50.seconds),
        "wait-p95": duration(day.wait.p95.seconds),
    }
    assert "estimated: between 2.5 s and 3.0 s" in cells["run-p95"]
    count_href = re.search(r'href="([^"]*)"', cells["count"])
    assert count_href
    q = explorer_query(count_href.group(1))
    assert q.startswith("status:success,failure,revoked task:billing.charge after:")
    assert '<a class="mono" href="/dashboard/tasks/billing.charge/?window=24h">' in html

    hour = admin_client_get("/dashboard/tasks/?window=1h")
    assert re.search(
        r'<tr data-task="billing.charge">.*?data-col="count"><a[^>]*>4</a>', hour, re.S
    )


def admin_client_get(url: str) -> str:
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(username="ops"))
    return client.get(url).content.decode()


def test_a_task_page_has_its_numbers_histogram_throughput_and_groups(known_rows: None) -> None:
    client = admin_client()
    html = client.get("/dashboard/tasks/billing.charge/").content.decode()
    assert re.search(r'data-card="count"[^>]*><span class="value">8</span>', html)
    assert re.search(r'data-card="failed"[^>]*><span class="value">1</span>', html)
    histogram = chart(html, "chart-run-histogram")
    assert histogram["labels"] == [
        "100 ms-250 ms",
        "250 ms-500 ms",
        "500 ms-1 s",
        "1 s-2.5 s",
        "2.5 s-5 s",
    ]
    assert histogram["datasets"][0]["data"] == [4, 0, 0, 0, 4]
    throughput = chart(html, "chart-task-throughput")
    assert len(throughput["labels"]) == 24
    succeeded, failed = (d["data"] for d in throughput["datasets"])
    assert (sum(succeeded), sum(failed)) == (7, 1)
    for index in (0, len(throughput["labels"]) - 1):
        response = client.get(throughput["link_template"].replace("{i}", str(index)))
        assert "task:billing.charge" in explorer_query(response["Location"])
    groups = re.search(r'<table class="data" data-table="groups">(.*?)</table>', html, re.S)
    assert groups
    assert "TimeoutError" in groups.group(1)
    jobs = re.search(r'href="([^"]*)">All its jobs</a>', html)
    assert jobs
    assert explorer_query(jobs.group(1)) == "task:billing.charge"


def test_a_task_with_nothing_in_the_window(known_rows: None) -> None:
    html = admin_client().get("/dashboard/tasks/mail.send/?window=1h").content.decode()
    assert re.search(r'data-card="count"[^>]*><span class="value">1</span>', html)
    empty = admin_client_get("/dashboard/tasks/unknown.task/")
    assert "No job of this task finished in the last 24 hours." in empty


def test_a_task_page_charts_minutes_hours_or_days_by_window(known_rows: None) -> None:
    client = admin_client()
    for window, buckets, totals in (
        ("1h", 60, (3, 1)),
        ("7d", 7 * 24, (7, 1)),
        ("30d", 30, (7, 1)),
    ):
        html = client.get(f"/dashboard/tasks/billing.charge/?window={window}").content.decode()
        throughput = chart(html, "chart-task-throughput")
        assert len(throughput["labels"]) == buckets, window
        succeeded, failed = (d["data"] for d in throughput["datasets"])
        assert (sum(succeeded), sum(failed)) == totals, window
