"""The dashboard's job page and Running page against known rows: what they show, what
they mask and escape, and who may see which button."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard import access
from tasks.models import Job, JobAttempt, JobStatus

pytestmark = pytest.mark.django_db

T0 = timezone.now().replace(microsecond=0) - timedelta(hours=1)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_job(task_id: str, **fields: Any) -> Job:
    defaults: dict[str, Any] = {
        "name": "shop.tasks.invoice",
        "queue": "default",
        "status": JobStatus.SUCCESS,
        "created_at": at(0),
        "root_id": task_id,
        "correlation_id": task_id,
    }
    return Job.objects.create(task_id=task_id, **{**defaults, **fields})


def staff(username: str, *codenames: str, groups: tuple[Any, ...] = ()) -> Any:
    user = get_user_model().objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="tasklayer", codename__in=codenames)
    )
    user.groups.add(*groups)
    return user


@pytest.fixture
def failed_job() -> Job:
    """A job that failed at its third attempt, with personal data and markup in it."""
    job = make_job(
        "job-main",
        name="shop.tasks.charge",
        status=JobStatus.FAILURE,
        args=[42, {"api_key": "k-123"}],
        kwargs={"email": "a@b.c", "n": 1},
        error="ValueError: <script>alert(1)</script>",
        traceback='Traceback (most recent call last):\n  File "shop/tasks.py", line 9\n<b>boom</b>',
        attempts=3,
        worker="w1@host",
        sent_at=at(1),
        started_at=at(30),
        finished_at=at(32.5),
        correlation_id="req-7",
        root_id="job-root",
        parent_id="job-root",
        group_id="grp-1",
    )
    for number, status, start in ((1, "RETRY", 3), (2, "RETRY", 12), (3, "FAILURE", 30)):
        JobAttempt.objects.create(
            key=f"job-main:{number}",
            task_id="job-main",
            number=number,
            status=status,
            worker="w1@host",
            started_at=at(start),
            finished_at=at(start + 2.5),
            error=f"ValueError: attempt {number} <i>failed</i>",
            next_attempt_at=at(start + 8) if status == "RETRY" else None,
        )
    return job


@pytest.fixture
def family(failed_job: Job) -> dict[str, Job]:
    """Root -> main -> two children; a sibling in the same group; a rerun of main; and
    an unrelated job that shares the correlation id (a later request step)."""
    jobs = {
        "root": make_job(
            "job-root", name="shop.tasks.checkout", created_at=at(-1), correlation_id="req-7"
        ),
        "child-a": make_job(
            "job-child-a",
            name="shop.tasks.receipt",
            created_at=at(40),
            started_at=at(41),
            finished_at=at(45),
            correlation_id="req-7",
            root_id="job-root",
            parent_id="job-main",
        ),
        "child-b": make_job(
            "job-child-b",
            name="shop.tasks.notify",
            status=JobStatus.STARTED,
            created_at=at(42),
            started_at=at(43),
            correlation_id="req-7",
            root_id="job-root",
            parent_id="job-main",
        ),
        "sibling": make_job(
            "job-sibling",
            created_at=at(2),
            correlation_id="req-7",
            root_id="job-root",
            parent_id="job-root",
            group_id="grp-1",
        ),
        "stranger": make_job("job-stranger", created_at=at(3), parent_id="job-main"),
    }
    rerun = make_job("job-rerun", name="shop.tasks.charge", created_at=at(60))
    Job.objects.filter(task_id="job-rerun").link_rerun(failed_job)
    jobs["rerun"] = rerun
    return jobs


def page(client: Client, task_id: str) -> str:
    response = client.get(f"/dashboard/jobs/{task_id}/")
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def section(html: str, heading_id: str) -> str:
    """The HTML of the <section> labelled by `heading_id`."""
    match = re.search(
        rf'<section[^>]*aria-labelledby="{heading_id}".*?</section>', html, flags=re.S
    )
    assert match, f"no section {heading_id}"
    return match.group(0)


# --- The job page ---------------------------------------------------------------------


def test_the_timeline_lists_each_step_with_wait_and_run_times(
    admin_client: Client, failed_job: Job
) -> None:
    timeline = section(page(admin_client, "job-main"), "timeline-title")
    labels = re.findall(r"<strong>([^<]+)</strong>", timeline)
    assert labels == [
        "Created",
        "Sent",
        "Attempt 1 started",
        "Attempt 1: retry",
        "Attempt 2 started",
        "Attempt 2: retry",
        "Attempt 3 started",
        "Attempt 3: failure",
        "Finished",
    ]
    assert "waited 29.0 s" in timeline  # sent (1 s) -> started (30 s)
    assert "ran 2.5 s" in timeline  # started -> finished
    assert "after 2.5 s: ValueError: attempt 1 &lt;i&gt;failed&lt;/i&gt;" in timeline
    assert timeline.count("next attempt due") == 2  # in the lines of the retried attempts


def test_the_attempts_table_has_one_row_per_attempt(admin_client: Client, failed_job: Job) -> None:
    attempts = section(page(admin_client, "job-main"), "attempts-title")
    rows = re.findall(r"<tr>\s*<td class=\"num\">(\d+)</td>", attempts)
    assert rows == ["1", "2", "3"]
    assert attempts.count("w1@host") == 3
    assert attempts.count("status-retry") == 2
    assert "status-failure" in attempts
    assert "ValueError: attempt 3 &lt;i&gt;failed&lt;/i&gt;" in attempts
    assert "<i>failed</i>" not in attempts


def test_a_first_try_success_shows_its_attempt_from_the_job_row(admin_client: Client) -> None:
    make_job("job-ok", started_at=at(5), finished_at=at(6), worker="w9@host", result={"ok": 1})
    html = page(admin_client, "job-ok")
    attempts = section(html, "attempts-title")
    assert "w9@host" in attempts
    assert "status-success" in attempts
    assert "&quot;ok&quot;: 1" in section(html, "outcome-title")


def test_sensitive_keys_are_masked_and_never_shown(admin_client: Client, failed_job: Job) -> None:
    html = page(admin_client, "job-main")
    assert "a@b.c" not in html
    assert "k-123" not in html
    kwargs = re.search(r'<div class="job-kwargs">(.*?)</div>', html, flags=re.S)
    assert kwargs
    assert "&quot;email&quot;: &quot;***&quot;" in kwargs.group(1)
    assert "&quot;n&quot;: 1" in kwargs.group(1)
    assert "&quot;api_key&quot;: &quot;***&quot;" in html
    failed_job.refresh_from_db()
    assert failed_job.kwargs == {"email": "a@b.c", "n": 1}  # the row keeps it for a replay


def test_error_and_traceback_are_escaped(admin_client: Client, failed_job: Job) -> None:
    html = page(admin_client, "job-main")
    assert "<script>alert(1)</script>" not in html
    assert "ValueError: &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;boom&lt;/b&gt;" in html
    assert "<b>boom</b>" not in html


def test_the_family_links_parent_root_children_group_and_reruns(
    admin_client: Client, family: dict[str, Job]
) -> None:
    html = section(page(admin_client, "job-main"), "family-title")
    assert re.search(r"<dt>Parent and root</dt><dd>.*?/dashboard/jobs/job-root/", html, re.S)
    children = re.search(r"<dt>Children</dt><dd>(.*?)</dd>", html, flags=re.S)
    assert children
    assert "/dashboard/jobs/job-child-a/" in children.group(1)
    assert "/dashboard/jobs/job-child-b/" in children.group(1)
    # Same parent id, another family: not a child of this job (another root).
    assert "job-stranger" not in html
    assert "?q=batch%3Agrp-1" in html
    assert "2 members" in html  # main and its sibling
    assert re.search(r"<dt>Replayed as</dt><dd>.*?/dashboard/jobs/job-rerun/", html, flags=re.S)

    child = section(page(admin_client, "job-child-a"), "family-title")
    assert re.search(r"<dt>Root</dt><dd>.*?/dashboard/jobs/job-root/", child, flags=re.S)
    assert re.search(r"<dt>Parent</dt><dd>.*?/dashboard/jobs/job-main/", child, flags=re.S)

    rerun = section(page(admin_client, "job-rerun"), "family-title")
    assert re.search(r"<dt>Retried from</dt><dd>.*?/dashboard/jobs/job-main/", rerun, flags=re.S)


def test_a_job_on_its_own_says_so(admin_client: Client) -> None:
    make_job("job-alone", correlation_id="")
    html = page(admin_client, "job-alone")
    assert "A job on its own" in section(html, "family-title")
    assert 'aria-labelledby="trace-title"' not in html


def test_the_correlation_trace_draws_every_job_sharing_the_id(
    admin_client: Client, family: dict[str, Job]
) -> None:
    trace = section(page(admin_client, "job-main"), "trace-title")
    linked = re.findall(r'class="trace-bar[^"]*"[^>]*href="/dashboard/jobs/([^/]+)/"', trace)
    # Ordered by creation: root (-1 s), main (0 s), sibling (2 s), the children (40 s, 42 s).
    assert linked == ["job-root", "job-main", "job-sibling", "job-child-a", "job-child-b"]
    assert "job-stranger" not in trace
    assert "job-rerun" not in trace
    assert "5 jobs sharing" in trace
    assert "?q=correlation%3Areq-7" in trace
    assert 'class="trace-row is-current"' in trace
    assert "trace-bar status-failure" in trace
    assert "trace-bar status-started" in trace


def test_explorer_links_for_task_name_and_correlation(
    admin_client: Client, failed_job: Job
) -> None:
    html = page(admin_client, "job-main")
    assert 'href="/dashboard/jobs/?q=task%3Ashop.tasks.charge"' in html
    assert 'href="/dashboard/jobs/?q=correlation%3Areq-7"' in html


def action_forms(html: str) -> list[str]:
    return re.findall(r'<input type="hidden" name="action" value="([a-z_]+)">', html)


def test_an_admin_sees_the_actions_that_apply_to_the_job(
    admin_client: Client, failed_job: Job
) -> None:
    make_job("job-busy", status=JobStatus.STARTED, started_at=at(1), correlation_id="")
    make_job(
        "job-dead",
        status=JobStatus.FAILURE,
        dead_lettered_at=at(9),
        correlation_id="",
    )
    assert action_forms(page(admin_client, "job-main")) == ["retry"]
    assert action_forms(page(admin_client, "job-busy")) == ["cancel", "hard_cancel"]
    assert action_forms(page(admin_client, "job-dead")) == ["retry", "replay", "purge"]
    # A dead letter already replayed is no longer parked: nothing left to replay or purge.
    make_job(
        "job-replayed",
        status=JobStatus.FAILURE,
        dead_lettered_at=at(9),
        dead_letter_resolution="replayed",
        dead_letter_resolved_at=at(20),
        correlation_id="",
    )
    assert action_forms(page(admin_client, "job-replayed")) == ["retry"]
    html = page(admin_client, "job-main")
    form = re.search(
        r'<form method="post" action="/dashboard/actions/preview/".*?</form>', html, re.S
    )
    assert form
    assert 'name="task_id" value="job-main"' in form.group(0)
    assert 'name="next" value="/dashboard/jobs/job-main/"' in form.group(0)
    assert 'name="csrfmiddlewaretoken"' in form.group(0)


def test_the_pages_are_styled_by_the_stylesheet_alone(
    admin_client: Client, failed_job: Job
) -> None:
    """Their layout lives in dashboard.css (one cached file, one place for the look)."""
    running = admin_client.get("/dashboard/running/").content.decode()
    for html in (page(admin_client, "job-main"), running):
        assert "<style" not in html
        assert re.search(r'<link rel="stylesheet" href="[^"]*/dashboard/dashboard\.[^"]*css"', html)


def test_a_user_sees_only_the_buttons_of_their_permissions(client: Client) -> None:
    make_job("job-busy", status=JobStatus.STARTED, started_at=at(1), correlation_id="")
    make_job("job-failed", status=JobStatus.FAILURE, correlation_id="")
    client.force_login(staff("canceller", "view_job", "cancel_job"))
    assert action_forms(page(client, "job-busy")) == ["cancel", "hard_cancel"]
    assert action_forms(page(client, "job-failed")) == []


def test_the_read_only_group_sees_no_buttons(client: Client, failed_job: Job) -> None:
    make_job("job-busy", status=JobStatus.STARTED, started_at=at(1), correlation_id="")
    client.force_login(staff("viewer", groups=(access.ensure_read_only_group(),)))
    for task_id in ("job-main", "job-busy"):
        html = page(client, task_id)
        assert action_forms(html) == []
        assert "/dashboard/actions/preview/" not in html


def test_anonymous_users_are_sent_to_log_in(client: Client, failed_job: Job) -> None:
    for url in ("/dashboard/jobs/job-main/", "/dashboard/jobs/job-main/live/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/?next=")


def test_staff_without_the_view_permission_get_403(client: Client, failed_job: Job) -> None:
    client.force_login(staff("nobody"))
    assert client.get("/dashboard/jobs/job-main/").status_code == 403
    assert client.get("/dashboard/jobs/job-main/live/").status_code == 403


def test_an_unknown_id_is_a_404_page(admin_client: Client) -> None:
    response = admin_client.get("/dashboard/jobs/no-such-job/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "Job not found" in html
    assert "no-such-job" in html
    assert admin_client.get("/dashboard/jobs/no-such-job/live/").status_code == 404


def test_the_live_fragment_refreshes_an_unfinished_job_only(admin_client: Client) -> None:
    make_job(
        "job-busy",
        status=JobStatus.STARTED,
        started_at=at(1),
        progress=40,
        progress_message="step 4 of 10 <em>x</em>",
        correlation_id="",
    )
    html = page(admin_client, "job-busy")
    assert 'data-live-src="/dashboard/jobs/job-busy/live/"' in html
    fragment = admin_client.get("/dashboard/jobs/job-busy/live/")
    assert fragment.status_code == 200
    body = fragment.content.decode()
    assert "<html" not in body
    assert 'value="40"' in body
    assert "step 4 of 10 &lt;em&gt;x&lt;/em&gt;" in body
    assert "status-started" in body
    make_job("job-done", correlation_id="")
    assert "data-live-src" not in page(admin_client, "job-done")


def test_the_job_page_reads_by_key_and_bounded(
    admin_client: Client, family: dict[str, Job]
) -> None:
    """A handful of queries, each by an indexed key, each with a LIMIT where it lists."""
    with CaptureQueriesContext(connection) as queries:
        page(admin_client, "job-main")
    job_queries = [q["sql"] for q in queries if '"tasklayer_job"' in q["sql"]]
    assert len(job_queries) <= 7, job_queries
    for sql in job_queries:
        assert "WHERE" in sql, sql
        if "COUNT(" in sql:
            assert "LIMIT" in sql, sql  # a capped count, never COUNT(*) of the table


# --- Running now ------------------------------------------------------------------------


@pytest.fixture
def running_jobs() -> list[Job]:
    now = timezone.now()
    return [
        make_job(
            f"run-{i}",
            name="demo.sleep",
            status=JobStatus.STARTED,
            created_at=now - timedelta(seconds=60 - i),
            started_at=now - timedelta(seconds=50 - i),
            worker=f"w{i}@host",
            progress=10 * i,
            progress_message=f"step {i}",
            correlation_id="",
        )
        for i in range(3)
    ] + [make_job("done-1", correlation_id="")]


def test_running_lists_started_jobs_newest_first_with_progress(
    admin_client: Client, running_jobs: list[Job]
) -> None:
    response = admin_client.get("/dashboard/running/")
    assert response.status_code == 200
    html = response.content.decode()
    assert re.findall(r'<tr data-task-id="([^"]+)">', html) == ["run-2", "run-1", "run-0"]
    assert "done-1" not in html
    assert 'data-live-src="/dashboard/running/live/"' in html
    assert 'value="20"' in html
    assert "step 2" in html
    assert "w1@host" in html
    assert "3 jobs running" in html
    fragment = admin_client.get("/dashboard/running/live/").content.decode()
    assert "<html" not in fragment
    assert re.findall(r'<tr data-task-id="([^"]+)">', fragment) == ["run-2", "run-1", "run-0"]


def test_running_offers_cancel_to_those_allowed(
    admin_client: Client, client: Client, running_jobs: list[Job]
) -> None:
    html = admin_client.get("/dashboard/running/").content.decode()
    assert 'id="running-bulk"' in html
    assert 'name="task_id" value="run-1" form="running-bulk"' in html
    assert 'name="action" value="hard_cancel"' in html
    assert (
        html.count('<form method="post" action="/dashboard/actions/preview/" class="row-action">')
        == 3
    )

    client.force_login(staff("viewer", groups=(access.ensure_read_only_group(),)))
    html = client.get("/dashboard/running/").content.decode()
    assert "run-1" in html
    assert "/dashboard/actions/preview/" not in html
    assert 'type="checkbox"' not in html


def test_running_says_when_nothing_runs(admin_client: Client) -> None:
    make_job("done-1", correlation_id="")
    html = admin_client.get("/dashboard/running/").content.decode()
    assert "Nothing is running right now." in html


def test_running_access(client: Client) -> None:
    assert client.get("/dashboard/running/").status_code == 302
    assert client.get("/dashboard/running/live/").status_code == 302
    client.force_login(staff("nobody"))
    assert client.get("/dashboard/running/").status_code == 403
