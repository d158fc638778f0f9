"""Bulk actions from the dashboard: preview, limit, apply, permissions, CSRF and audit."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.utils import timezone

from tasks.models import Job, JobStatus
from tasks.record.events import JobEvent
from tasks.record.service import write

pytestmark = pytest.mark.django_db


def _jobs(prefix: str, status: str, n: int, **facts: object) -> list[str]:
    now = timezone.now()
    ids = [f"{prefix}{i}" for i in range(n)]
    events = [
        JobEvent(
            i, JobStatus.SENT, 0, facts={"name": "demo.job", "queue": "default", **facts}, at=now
        )
        for i in ids
    ]
    if status != JobStatus.SENT:
        state = (
            {"finished_at": now, "error": "ValueError: nope"} if status == JobStatus.FAILURE else {}
        )
        events += [JobEvent(i, status, 1, state=state, at=now + timedelta(seconds=1)) for i in ids]
    write(events, [])
    return ids


def test_the_preview_counts_what_each_action_touches_and_skips_and_why(
    admin_client_logged_in: Client,
) -> None:
    _jobs("f", JobStatus.FAILURE, 3)
    _jobs("s", JobStatus.SUCCESS, 2)
    _jobs("q", JobStatus.SENT, 1)
    response = admin_client_logged_in.post(
        "/dashboard/actions/preview/",
        {"action": "retry", "q": "task:demo.job", "next": "/dashboard/jobs/"},
    )
    assert response.status_code == 200
    chosen = response.context["chosen"]
    assert chosen.touched.count == 3
    assert dict((reason, tally.count) for reason, tally in chosen.skipped) == {
        "succeeded": 2,
        "not finished yet": 1,
    }
    page = response.content.decode()
    assert "2</strong> skipped: succeeded" in page
    others = {p.action.value: p.touched.count for p in response.context["others"]}
    assert others["cancel"] == 1  # the SENT job
    assert others["replay"] == 0


def test_applying_a_filter_retries_exactly_the_failed_jobs_and_writes_the_audit_log(
    admin_client_logged_in: Client,
) -> None:
    failed = _jobs("f", JobStatus.FAILURE, 3)
    _jobs("s", JobStatus.SUCCESS, 2)
    response = admin_client_logged_in.post(
        "/dashboard/actions/apply/",
        {"action": "retry", "q": "task:demo.job", "next": "/dashboard/jobs/?q=task%3Ademo.job"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == "/dashboard/jobs/?q=task%3Ademo.job"
    assert "Retry: 3 done, 2 skipped (2 succeeded)" in response.content.decode()
    assert Job.objects.filter(retried_from__task_id__in=failed).count() == 3
    entry = LogEntry.objects.get()
    detail = json.loads(entry.change_message)["dashboard"]
    assert (entry.user.get_username(), detail["action"], detail["count"]) == ("ops", "retry", 3)
    assert detail["scope"] == "all jobs matching: task:demo.job"
    assert sorted(detail["task_ids"]) == sorted(failed)
    activity = admin_client_logged_in.get("/dashboard/activity/").content.decode()
    assert "Retry: 3 done" in activity
    assert "all jobs matching: task:demo.job" in activity


@override_settings(TASKS_BULK_ACTION_LIMIT=2)
def test_past_the_limit_nothing_is_done_and_the_message_says_why(
    admin_client_logged_in: Client,
) -> None:
    _jobs("f", JobStatus.FAILURE, 3)
    preview = admin_client_logged_in.post(
        "/dashboard/actions/preview/", {"action": "retry", "q": "status:failure"}
    )
    assert preview.context["chosen"].over_limit
    assert "TASKS_BULK_ACTION_LIMIT" in preview.content.decode()
    response = admin_client_logged_in.post(
        "/dashboard/actions/apply/", {"action": "retry", "q": "status:failure"}, follow=True
    )
    assert "More than 2 jobs match" in response.content.decode()
    assert not Job.objects.filter(retried_from__isnull=False).exists()
    assert not LogEntry.objects.exists()


def test_selected_rows_are_acted_on_not_the_whole_filter(admin_client_logged_in: Client) -> None:
    failed = _jobs("f", JobStatus.FAILURE, 3)
    admin_client_logged_in.post(
        "/dashboard/actions/apply/",
        {"action": "retry", "q": "status:failure", "scope": "selected", "task_id": failed[:1]},
    )
    assert (
        list(
            Job.objects.filter(retried_from__isnull=False).values_list(
                "retried_from__task_id", flat=True
            )
        )
        == failed[:1]
    )


def test_a_read_only_user_sees_no_action_and_a_forged_post_gets_403(
    read_only_client: Client,
) -> None:
    failed = _jobs("f", JobStatus.FAILURE, 2)
    page = read_only_client.get("/dashboard/jobs/?q=status:failure")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="action"' not in html
    assert "select-all" not in html
    for url in ("/dashboard/actions/preview/", "/dashboard/actions/apply/"):
        response = read_only_client.post(url, {"action": "retry", "task_id": failed})
        assert response.status_code == 403
    assert not Job.objects.filter(retried_from__isnull=False).exists()


def test_staff_without_the_view_permission_gets_403_and_anonymous_is_sent_to_login(
    staff_without_view_client: Client,
) -> None:
    assert staff_without_view_client.get("/dashboard/jobs/").status_code == 403
    response = Client().get("/dashboard/jobs/?q=status:failure")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=/dashboard/jobs/")


def test_actions_need_the_csrf_token(db: object) -> None:
    user = get_user_model().objects.create_superuser("ops2", "o@example.com", "pw-123456789")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    failed = _jobs("f", JobStatus.FAILURE, 1)
    response = client.post("/dashboard/actions/apply/", {"action": "retry", "task_id": failed})
    assert response.status_code == 403
    assert not Job.objects.filter(retried_from__isnull=False).exists()


def test_a_malformed_filter_or_unknown_action_loses_nothing_and_says_why(
    admin_client_logged_in: Client,
) -> None:
    _jobs("f", JobStatus.FAILURE, 1)
    response = admin_client_logged_in.post(
        "/dashboard/actions/apply/", {"action": "retry", "q": "status:bogus"}, follow=True
    )
    assert "status" in response.content.decode().lower()
    assert (
        admin_client_logged_in.post("/dashboard/actions/apply/", {"action": "explode"}).status_code
        == 400
    )
    assert not Job.objects.filter(retried_from__isnull=False).exists()
