"""The overview against known rows written by the recorder: every number exact, every
number a link to its jobs, the charts' data filled minute by minute."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from tasks.models import JobStatus, WorkerBeat
from tasks.record.events import JobEvent
from tasks.record.service import write

pytestmark = pytest.mark.django_db

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/app/billing/jobs.py", line 42, in charge\n'
    "    raise TimeoutError('slow')\n"
    "TimeoutError: slow\n"
)


def sent(task_id: str, at: datetime, name: str = "billing.charge", queue: str = "high") -> None:
    """A job published at `at` (its row is created then)."""
    facts = {"name": name, "queue": queue, "sent_at": at}
    write([JobEvent(task_id, JobStatus.SENT, 0, facts=facts, at=at)], [])


def finish(
    task_id: str,
    status: str,
    at: datetime,
    *,
    name: str = "billing.charge",
    queue: str = "high",
    run: timedelta = timedelta(seconds=1),
    wait: timedelta = timedelta(seconds=2),
    error: str = "",
    traceback: str = "",
    **state: Any,
) -> None:
    """A job sent, started `run` before `at` after waiting `wait`, and finished at `at`."""
    started = at - run
    sent(task_id, started - wait, name, queue)
    state = {"started_at": started, "finished_at": at, **state}
    if status == JobStatus.FAILURE:
        state |= {"error": error or "TimeoutError: slow", "traceback": traceback or TRACEBACK}
    write([JobEvent(task_id, status, 1, state=state, at=at)], [])


def in_state(task_id: str, status: str, at: datetime, queue: str = "high") -> None:
    """A job created at `at` and now in an unfinished `status`."""
    sent(task_id, at, queue=queue)
    if status != JobStatus.SENT:
        write([JobEvent(task_id, status, 1, state={"started_at": at}, at=at)], [])


def admin_client() -> Client:
    user = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


def explorer_query(href: str) -> str:
    parsed = urlparse(unescape(href))
    assert parsed.path == "/dashboard/jobs/"
    return parse_qs(parsed.query)["q"][0]


def bucket_query(client: Client, spec: dict[str, Any], index: int) -> str:
    """The explorer filter a click on bucket `index` of a chart opens."""
    response = client.get(spec["link_template"].replace("{i}", str(index)))
    assert response.status_code == 302
    return explorer_query(response["Location"])


def card(html: str, key: str) -> tuple[str, str, str]:
    """(href, value, label) of an overview card."""
    match = re.search(
        rf'<a class="card[^"]*" data-card="{key}" href="([^"]*)"[^>]*>\s*'
        r'<span class="value">([^<]*)</span>\s*<span class="label">([^<]*)</span>',
        html,
    )
    assert match, f"no card {key}"
    return match.group(1), match.group(2), match.group(3)


def status_cells(html: str, status: str) -> list[tuple[str, str]]:
    """(href, number) of the hour and day cells of a status row."""
    row = re.search(rf'<tr data-status="{status}">(.*?)</tr>', html, re.S)
    assert row, f"no row for {status}"
    return re.findall(r'<a href="([^"]*)">([^<]*)</a>', row.group(1))


def chart(html: str, chart_id: str) -> dict[str, Any]:
    match = re.search(rf'<script id="{chart_id}" type="application/json">(.*?)</script>', html)
    assert match, f"no chart {chart_id}"
    data: dict[str, Any] = json.loads(match.group(1))
    return data


@pytest.fixture
def known_rows() -> datetime:
    """Finished jobs 5 minutes, 3 hours and 3 days ago; unfinished ones; a dead letter;
    one worker online and one gone."""
    now = timezone.now()
    recent, earlier, old = (
        now - timedelta(minutes=5),
        now - timedelta(hours=3),
        now - timedelta(days=3),
    )
    for i in range(3):
        finish(f"ok-recent-{i}", JobStatus.SUCCESS, recent)
    for i in range(2):
        finish(f"bad-recent-{i}", JobStatus.FAILURE, recent)
    finish("revoked-recent", JobStatus.REVOKED, recent)
    for i in range(4):
        finish(f"ok-earlier-{i}", JobStatus.SUCCESS, earlier)
    finish("bad-earlier", JobStatus.FAILURE, earlier)
    finish("dead-earlier", JobStatus.FAILURE, earlier, dead_lettered_at=earlier)
    for i in range(7):
        finish(f"ok-old-{i}", JobStatus.SUCCESS, old)
    finish("bad-old", JobStatus.FAILURE, old)
    in_state("running-1", JobStatus.STARTED, now - timedelta(minutes=2))
    in_state("running-2", JobStatus.STARTED, now - timedelta(hours=2))
    in_state("queued-high", JobStatus.SENT, now - timedelta(minutes=1))
    in_state("queued-low-1", JobStatus.SENT, now - timedelta(minutes=1), queue="low")
    in_state("queued-low-2", JobStatus.RECEIVED, now - timedelta(hours=5), queue="low")
    for host, seen in (("w1@up", now), ("w2@gone", now - timedelta(hours=1))):
        WorkerBeat.objects.create(
            hostname=host,
            pid=1,
            pool="prefork",
            concurrency=2,
            queues=["default"],
            started_at=now - timedelta(hours=2),
            last_seen_at=seen,
        )
    return now


def test_the_cards_count_and_link_the_jobs_behind_them(known_rows: datetime) -> None:
    html = admin_client().get("/dashboard/").content.decode()
    href, value, label = card(html, "running")
    assert (value, label, explorer_query(href)) == ("2", "Running now", "status:started")
    href, value, _ = card(html, "queued")
    assert value == "3"
    assert explorer_query(href) == "status:pending,sent,received,retry"
    href, value, _ = card(html, "dead")
    assert (value, explorer_query(href)) == ("1", "dead:yes")
    href, value, _ = card(html, "failed")
    assert value == "2"
    assert explorer_query(href).startswith("status:failure after:")
    href, value, _ = card(html, "workers")
    assert (value, href) == ("1", "#workers")  # the table of workers below


def test_jobs_by_status_over_the_last_hour_and_day(known_rows: datetime) -> None:
    html = admin_client().get("/dashboard/").content.decode()
    expected = {
        JobStatus.SUCCESS: ("3", "7"),
        JobStatus.FAILURE: ("2", "4"),
        JobStatus.REVOKED: ("1", "1"),
        JobStatus.STARTED: ("1", "2"),
        JobStatus.SENT: ("2", "2"),
        JobStatus.RECEIVED: ("0", "1"),
        JobStatus.PENDING: ("0", "0"),
        JobStatus.RETRY: ("0", "0"),
    }
    for status, numbers in expected.items():
        cells = status_cells(html, status)
        assert tuple(number for _, number in cells) == numbers, status
        hour_q, day_q = (explorer_query(href) for href, _ in cells)
        assert hour_q.startswith(f"status:{status.lower()} after:")
        after_hour = datetime.fromisoformat(hour_q.split("after:")[1]).replace(
            tzinfo=timezone.get_current_timezone()
        )
        after_day = datetime.fromisoformat(day_q.split("after:")[1]).replace(
            tzinfo=timezone.get_current_timezone()
        )
        assert timedelta(minutes=59) < known_rows - after_hour <= timedelta(minutes=61)
        assert (
            timedelta(hours=23, minutes=59)
            < known_rows - after_day
            <= timedelta(hours=24, minutes=1)
        )


def test_backlog_per_configured_queue(known_rows: datetime) -> None:
    html = admin_client().get("/dashboard/").content.decode()
    for queue, number in (("high", "1"), ("default", "0"), ("low", "2"), ("celery", "0")):
        row = re.search(rf'<tr data-queue="{queue}">(.*?)</tr>', html, re.S)
        assert row, queue
        href, shown = re.findall(r'<a href="([^"]*)">([^<]*)</a>', row.group(1))[0]
        assert shown == number
        assert explorer_query(href) == f"status:pending,sent,received,retry queue:{queue}"


def test_workers_online_are_listed(known_rows: datetime) -> None:
    html = admin_client().get("/dashboard/").content.decode()
    workers = re.search(r'<table class="data" data-table="workers"(.*?)</table>', html, re.S)
    assert workers
    assert re.findall(r'<tr data-worker="([^"]*)">', workers.group(1)) == ["w1@up"]


def test_throughput_charts_fill_every_bucket_and_link_each_one(known_rows: datetime) -> None:
    client = admin_client()
    html = client.get("/dashboard/").content.decode()
    minutes = chart(html, "chart-per-minute")
    assert len(minutes["labels"]) == 24 * 60
    succeeded, failed = (d["data"] for d in minutes["datasets"])
    assert [d["status"] for d in minutes["datasets"]] == ["SUCCESS", "FAILURE"]
    assert (sum(succeeded), sum(failed)) == (7, 4)  # 3 days ago is out of the day
    assert succeeded.count(0) == 24 * 60 - 2  # two busy minutes, zeros elsewhere
    busy = [i for i, n in enumerate(failed) if n]
    assert [(succeeded[i], failed[i]) for i in busy] == [(4, 2), (3, 2)]  # 3 h, 5 min ago
    assert busy[1] in (24 * 60 - 1 - 5, 24 * 60 - 1 - 6)
    busy = busy[1]
    q = bucket_query(client, minutes, busy)
    assert re.fullmatch(r"status:failure after:\S+ before:\S+", q)
    after, before = (datetime.fromisoformat(p.split(":", 1)[1]) for p in q.split()[1:])
    assert before - after == timedelta(minutes=1)
    quiet = bucket_query(client, minutes, 0)
    assert quiet.startswith("status:success,failure after:")

    hours = chart(html, "chart-per-hour")
    assert len(hours["labels"]) == 30 * 24
    succeeded, failed = (d["data"] for d in hours["datasets"])
    assert (sum(succeeded), sum(failed)) == (14, 5)


def test_the_live_fragments_are_the_numbers_and_the_charts_without_the_page(
    known_rows: datetime,
) -> None:
    client = admin_client()
    numbers = client.get("/dashboard/live/").content.decode()
    assert "<html" not in numbers
    assert card(numbers, "running")[1] == "2"
    assert "data-chart=" not in numbers  # the charts refresh on their own, once a minute
    charts = client.get("/dashboard/live/charts/").content.decode()
    assert "<html" not in charts
    assert 'data-chart="chart-per-minute"' in charts
    assert 'data-chart="chart-per-hour"' in charts
    page = client.get("/dashboard/").content.decode()
    assert 'data-live-src="/dashboard/live/"' in page
    assert 'data-live-src="/dashboard/live/charts/" data-live-every="60"' in page


def test_counts_stop_at_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard.read import cards, status_counts

    monkeypatch.setattr(cards, "CAP", 2)
    monkeypatch.setattr(status_counts, "CAP", 2)
    now = timezone.now()
    for i in range(3):
        in_state(f"r{i}", JobStatus.STARTED, now - timedelta(minutes=1))
    html = admin_client().get("/dashboard/").content.decode()
    assert card(html, "running")[1] == "2+"
    assert [n for _, n in status_cells(html, JobStatus.STARTED)] == ["more than 2"] * 2


def test_a_user_without_the_view_permission_is_refused() -> None:
    user = get_user_model().objects.create_user("clerk", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    assert client.get("/dashboard/").status_code == 403
    assert client.get("/dashboard/live/").status_code == 403
    assert Client().get("/dashboard/").status_code == 302
