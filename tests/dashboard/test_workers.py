"""The Workers page from rows: lost first with its running job at risk, badges, counts,
Flower links, buttons only with `change_workerbeat`, forged POSTs refused with 403, the
shutdown preview, the audit entry; the Running page's "at risk" mark.

The same page against real workers (killed, grown, shut down) is in
tests/dashboard/test_workers_browser.py and tests/tasks/test_worker_states.py."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from dashboard.access import ensure_read_only_group
from tasks.models import JobStatus, WorkerBeat
from tasks.record.events import JobEvent
from tasks.record.service import write

pytestmark = pytest.mark.django_db

PASSWORD = "s3cret-pass"


def beat(hostname: str, seen: datetime, *, stopped: bool = False, **fields: object) -> None:
    values: dict[str, object] = {
        "pid": 4242,
        "pool": "prefork",
        "concurrency": 4,
        "queues": ["default", "high"],
        "started_at": seen - timedelta(hours=3),
        "last_seen_at": seen,
        "stopped_at": seen if stopped else None,
        "processed": 120,
        "failed": 7,
        **fields,
    }
    WorkerBeat.objects.create(hostname=hostname, **values)


def running_on(task_id: str, worker: str, at: datetime) -> None:
    facts = {"name": "billing.charge", "queue": "default", "sent_at": at}
    write([JobEvent(task_id, JobStatus.SENT, 0, facts=facts, at=at)], [])
    state = {"started_at": at, "worker": worker}
    write([JobEvent(task_id, JobStatus.STARTED, 1, state=state, at=at)], [])


@pytest.fixture
def fleet() -> datetime:
    now = timezone.now()
    beat("alive@web-1", now)
    beat("gone@web-2", now - timedelta(minutes=3))
    beat("done@web-3", now - timedelta(minutes=10), stopped=True)
    beat("solo@web-4", now, pool="solo", concurrency=1)
    beat("ancient@web-5", now - timedelta(days=3))  # not recent: not listed
    running_on("job-on-gone", "gone@web-2", now - timedelta(minutes=4))
    running_on("job-on-alive", "alive@web-1", now - timedelta(seconds=30))
    return now


def operator(*permissions: str) -> Client:
    user = get_user_model().objects.create_user("op", password=PASSWORD, is_staff=True)
    user.groups.add(ensure_read_only_group())
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


def rows(html: str) -> list[tuple[str, str]]:
    return re.findall(r'<tr data-worker="([^"]+)" data-status="(\w+)"', html)


def test_lost_workers_come_first_with_their_jobs_at_risk(
    fleet: datetime, admin_client_logged_in: Client
) -> None:
    html = admin_client_logged_in.get("/dashboard/workers/").content.decode()
    assert rows(html) == [
        ("gone@web-2", "lost"),
        ("alive@web-1", "online"),
        ("solo@web-4", "online"),
        ("done@web-3", "stopped"),
    ]
    lost_row = html[
        html.index('data-worker="gone@web-2"') : html.index('data-worker="alive@web-1"')
    ]
    assert 'class="badge worker-lost"' in lost_row
    assert "at risk" in lost_row
    assert 'data-task-id="job-on-gone"' in lost_row
    assert "/dashboard/jobs/job-on-gone/" in lost_row
    online_row = html[
        html.index('data-worker="alive@web-1"') : html.index('data-worker="solo@web-4"')
    ]
    assert "at risk" not in online_row
    assert 'data-task-id="job-on-alive"' in online_row
    assert '<span class="c-processed">120</span>' in online_row
    assert '<span class="c-failed">7</span> failed' in online_row
    assert "default" in online_row
    assert "high" in online_row
    assert "1 lost" in html
    assert "2 online" in html
    assert "1 stopped" in html
    assert "1 job at risk" in html
    # The live fragment is the same table.
    live = admin_client_logged_in.get("/dashboard/workers/live/").content.decode()
    assert rows(live) == rows(html)
    assert "<html" not in live


def test_buttons_show_only_with_the_permission_and_only_for_online_prefork_pools(
    fleet: datetime, admin_client_logged_in: Client, read_only_client: Client
) -> None:
    html = admin_client_logged_in.get("/dashboard/workers/").content.decode()
    assert html.count('action="/dashboard/workers/alive@web-1/pool/"') == 2
    assert 'action="/dashboard/workers/alive@web-1/shutdown/"' in html
    assert 'action="/dashboard/workers/solo@web-4/pool/"' not in html
    assert "fixed size (solo)" in html
    assert "/dashboard/workers/gone@web-2/" not in html  # lost: nothing to steer
    assert "/dashboard/workers/done@web-3/" not in html
    read_only = read_only_client.get("/dashboard/workers/").content.decode()
    assert rows(read_only) == rows(html)
    assert "/pool/" not in read_only
    assert "/shutdown/" not in read_only


def test_forged_posts_without_the_permission_get_403(
    fleet: datetime, read_only_client: Client, staff_without_view_client: Client
) -> None:
    client = Client(enforce_csrf_checks=False)
    for url, data in (
        ("/dashboard/workers/alive@web-1/pool/", {"change": "grow"}),
        ("/dashboard/workers/alive@web-1/shutdown/", {}),
        ("/dashboard/workers/alive@web-1/shutdown/", {"confirm": "yes"}),
    ):
        assert read_only_client.post(url, data).status_code == 403
        assert staff_without_view_client.post(url, data).status_code == 403
        assert client.post(url, data).status_code == 302  # to the login page
    assert not LogEntry.objects.exists()


def test_actions_need_csrf(fleet: datetime) -> None:
    client = operator("view_job", "change_workerbeat")
    client.handler.enforce_csrf_checks = True
    response = client.post("/dashboard/workers/alive@web-1/pool/", {"change": "grow"})
    assert response.status_code == 403


def test_the_shutdown_preview_lists_what_will_finish_first(fleet: datetime) -> None:
    client = operator("view_job", "change_workerbeat")
    assert client.get("/dashboard/workers/alive@web-1/shutdown/").status_code == 405
    html = client.post("/dashboard/workers/alive@web-1/shutdown/").content.decode()
    assert "Shut down alive@web-1?" in html
    assert '<strong class="value">1</strong> job running on it now will finish first' in html
    assert "/dashboard/jobs/job-on-alive/" in html
    assert 'name="confirm" value="yes"' in html
    lost = client.post("/dashboard/workers/gone@web-2/shutdown/").content.decode()
    assert "is lost: there is nothing to shut down" in lost
    assert 'name="confirm"' not in lost
    assert not LogEntry.objects.exists()  # a preview changes nothing


def test_a_pool_action_is_audited_with_its_answer(fleet: datetime) -> None:
    client = operator("view_job", "change_workerbeat")
    response = client.post("/dashboard/workers/solo@web-4/pool/", {"change": "grow"}, follow=True)
    html = response.content.decode()
    assert "only a prefork pool grows or shrinks" in html
    entry = LogEntry.objects.get()
    assert "solo@web-4" in entry.object_repr
    assert "worker_pool_grow" in entry.change_message
    activity = client.get("/dashboard/activity/").content.decode()
    assert "worker_pool_grow" in activity or "solo@web-4" in activity
    bad = client.post("/dashboard/workers/solo@web-4/pool/", {"change": "explode"})
    assert bad.status_code == 400


def test_flower_links_point_at_each_workers_page(
    fleet: datetime, admin_client_logged_in: Client, settings: object
) -> None:
    settings.TASKS_FLOWER_URL = "http://127.0.0.1:5555/"  # type: ignore[attr-defined]
    html = admin_client_logged_in.get("/dashboard/workers/").content.decode()
    assert 'href="http://127.0.0.1:5555/worker/alive@web-1"' in html


def test_the_running_page_marks_jobs_of_lost_workers_at_risk(
    fleet: datetime, admin_client_logged_in: Client
) -> None:
    html = admin_client_logged_in.get("/dashboard/running/live/").content.decode()
    gone = html[html.index('data-task-id="job-on-gone"') :]
    gone = gone[: gone.index("</tr>")]
    alive = html[html.index('data-task-id="job-on-alive"') :]
    alive = alive[: alive.index("</tr>")]
    assert "at risk" in gone
    assert "at risk" not in alive


def test_no_worker_yet(admin_client_logged_in: Client) -> None:
    html = admin_client_logged_in.get("/dashboard/workers/").content.decode()
    assert "No worker has sent a heartbeat in the last 24 hours" in html
