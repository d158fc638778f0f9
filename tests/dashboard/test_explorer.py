"""The jobs explorer and its CSV export against known rows."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from tasks.models import JobStatus
from tasks.record.events import JobEvent
from tasks.record.service import write

pytestmark = pytest.mark.django_db


def _job(task_id: str, name: str, status: str, minutes_ago: int, **extra: object) -> None:
    at = timezone.now() - timedelta(minutes=minutes_ago)
    facts = {"name": name, "queue": "default", "kwargs": extra.pop("kwargs", {}), "args": []}
    events = [JobEvent(task_id, JobStatus.SENT, 0, facts=facts, at=at)]
    if status != JobStatus.SENT:
        events.append(JobEvent(task_id, status, 1, state={"finished_at": at, **extra}, at=at))
    write(events, [])


def test_a_time_range_and_error_text_find_exactly_the_expected_jobs(
    admin_client_logged_in: Client,
) -> None:
    _job("old-timeout", "billing.charge", JobStatus.FAILURE, 120, error="Timeout: read")
    _job("new-timeout", "billing.charge", JobStatus.FAILURE, 10, error="Timeout: read")
    _job("new-other", "billing.charge", JobStatus.FAILURE, 10, error="ValueError: bad")
    _job("new-ok", "billing.charge", JobStatus.SUCCESS, 10)
    response = admin_client_logged_in.get(
        "/dashboard/jobs/", {"q": 'task:billing.* after:1h error:"timeout"'}
    )
    assert response.status_code == 200
    assert [job.task_id for job in response.context["page"].rows] == ["new-timeout"]
    assert response.context["count"] == 1
    assert not response.context["more"]


def test_newest_first_with_older_pages_by_cursor(admin_client_logged_in: Client) -> None:
    for i in range(55):
        _job(f"j{i:02}", "demo.job", JobStatus.SUCCESS, i)
    first = admin_client_logged_in.get("/dashboard/jobs/", {"q": "task:demo.job"})
    rows = [job.task_id for job in first.context["page"].rows]
    assert rows[:2] == ["j00", "j01"]
    assert len(rows) == 50
    cursor = first.context["page"].next_cursor
    second = admin_client_logged_in.get("/dashboard/jobs/", {"q": "task:demo.job", "after": cursor})
    assert [job.task_id for job in second.context["page"].rows] == [f"j{i}" for i in range(50, 55)]
    assert "Older" not in second.content.decode().split("</table>")[-1]


def test_a_malformed_filter_shows_its_error_and_no_rows(admin_client_logged_in: Client) -> None:
    response = admin_client_logged_in.get("/dashboard/jobs/", {"q": "colour:red"})
    assert response.status_code == 400
    assert "colour" in response.content.decode()
    assert (
        admin_client_logged_in.get("/dashboard/jobs/export.csv", {"q": "colour:red"}).status_code
        == 400
    )


def test_user_text_is_escaped(admin_client_logged_in: Client) -> None:
    _job(
        "x1",
        "<script>alert(1)</script>",
        JobStatus.FAILURE,
        1,
        error="<img src=x onerror=alert(2)>",
    )
    html = admin_client_logged_in.get("/dashboard/jobs/").content.decode()
    assert "<script>alert(1)" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;" in html


@override_settings(TASKS_EXPORT_LIMIT=2)
def test_the_csv_export_is_bounded_redacted_and_safe_for_spreadsheets(
    admin_client_logged_in: Client,
) -> None:
    _job("c1", "crm.sync", JobStatus.SUCCESS, 3, kwargs={"email": "ann@example.com", "n": 1})
    _job(
        "c2",
        "crm.sync",
        JobStatus.FAILURE,
        2,
        kwargs={"api_token": "tok-123"},
        error="=HYPERLINK(x)",
    )
    _job("c3", "crm.sync", JobStatus.SUCCESS, 1, kwargs={"n": 3})
    response = admin_client_logged_in.get("/dashboard/jobs/export.csv", {"q": "task:crm.sync"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [row["task_id"] for row in rows] == ["c3", "c2"]  # newest first, at most 2
    assert "ann@example.com" not in body
    assert "tok-123" not in body
    assert rows[1]["kwargs"] == '{"api_token": "***"}'
    assert rows[1]["error"] == "'=HYPERLINK(x)"


def test_autocomplete_offers_task_names_and_queues(admin_client_logged_in: Client) -> None:
    tasks = admin_client_logged_in.get(
        "/dashboard/jobs/suggest/", {"q": "task:tasks.demo.a"}
    ).json()
    assert "task:tasks.demo.add" in tasks["suggestions"]
    queues = admin_client_logged_in.get("/dashboard/jobs/suggest/", {"q": "queue:hi"}).json()
    assert queues["suggestions"] == ["queue:high"]


def test_the_nav_links_to_flower_only_when_its_url_is_set(admin_client_logged_in: Client) -> None:
    assert ">Flower<" not in admin_client_logged_in.get("/dashboard/jobs/").content.decode()
    with override_settings(TASKS_FLOWER_URL="http://127.0.0.1:5555/"):
        html = admin_client_logged_in.get("/dashboard/jobs/").content.decode()
    assert 'href="http://127.0.0.1:5555/"' in html


def test_a_task_id_with_a_slash_has_a_page_and_a_live_fragment(
    admin_client_logged_in: Client,
) -> None:
    _job("batch/7/item-3", "demo.job", JobStatus.SUCCESS, 1)
    listing = admin_client_logged_in.get("/dashboard/jobs/").content.decode()
    assert 'href="/dashboard/jobs/batch/7/item-3/"' in listing
    assert admin_client_logged_in.get("/dashboard/jobs/batch/7/item-3/").status_code == 200
    assert admin_client_logged_in.get("/dashboard/jobs/batch/7/item-3/live/").status_code == 200
