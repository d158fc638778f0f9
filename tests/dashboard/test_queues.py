"""The queues page on the real Redis broker: depth as the broker counts it, pause and
resume and purge only with `tasklayer.change_queuepause` (403 on a forged POST), each
action in the audit log, and a page that still renders with the broker down."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import redis
from celery import Celery
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from kombu import Exchange, Queue

from tasks.models import Job, JobStatus, QueuePause
from tests.dashboard.conftest import PASSWORD
from tests.faults import count_run
from tests.support.broker import PRIORITY_SEPARATOR, clear_queue
from tests.support.brokers import REDIS_TRANSPORT, Broker, point_app_at

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_answers(settings: object) -> None:
    settings.TASKS_DASHBOARD_SHARED_SECONDS = 0  # type: ignore[attr-defined]


@pytest.fixture
def queue(celery_app: Celery, redis_client: redis.Redis) -> Iterator[str]:
    """A configured queue that no test worker consumes."""
    name = f"page-{uuid.uuid4().hex[:8]}"
    previous = celery_app.conf.task_queues
    celery_app.conf.task_queues = (*previous, Queue(name, Exchange(name), routing_key=name))
    try:
        yield name
    finally:
        celery_app.conf.task_queues = previous
        clear_queue(redis_client, name)


def broker_depth(client: redis.Redis, name: str) -> int:
    lists = [name, *(f"{name}{PRIORITY_SEPARATOR}{n}" for n in range(1, 10))]
    return sum(int(client.llen(key)) for key in lists)


def row_of(html: str, name: str) -> str:
    start = html.index(f'data-queue="{name}"')
    return html[start : html.index("</tr>", start)]


def depth_cell(row: str) -> str:
    start = row.index('data-label="waiting">') + len('data-label="waiting">')
    return row[start : row.index("</td>", start)].strip()


def entries(action: str) -> list[dict[str, object]]:
    found = []
    for entry in LogEntry.objects.order_by("pk"):
        message = json.loads(entry.change_message or "{}").get("dashboard") or {}
        if message.get("action") == action:
            found.append(message)
    return found


def test_the_page_shows_the_brokers_depth_summed_over_priority_sub_queues(
    admin_client_logged_in: Client, queue: str, redis_client: redis.Redis
) -> None:
    for priority in (0, 0, 4, 7, 9):
        count_run.apply_async(("x",), queue=queue, priority=priority)

    page = admin_client_logged_in.get("/dashboard/queues/")
    live = admin_client_logged_in.get("/dashboard/queues/live/")

    assert page.status_code == live.status_code == 200
    for html in (page.content.decode(), live.content.decode()):
        row = row_of(html, queue)
        assert depth_cell(row) == str(broker_depth(redis_client, queue)) == "5"
        assert f"/dashboard/jobs/?q=queue%3A{queue}" in row
        assert "Pause</button>" in row


def test_pause_resume_and_purge_are_audited_and_purged_jobs_end_revoked(
    admin_client_logged_in: Client, queue: str, redis_client: redis.Redis
) -> None:
    ids = [count_run.apply_async((f"p{i}",), queue=queue, priority=i % 10).id for i in range(7)]

    response = admin_client_logged_in.post(f"/dashboard/queues/{queue}/pause/")
    assert response.status_code == 302
    assert QueuePause.objects.filter(queue=queue, paused_by="ops").exists()
    row = row_of(admin_client_logged_in.get("/dashboard/queues/").content.decode(), queue)
    assert "chip-paused" in row
    assert "Resume</button>" in row

    admin_client_logged_in.post(f"/dashboard/queues/{queue}/resume/")
    assert not QueuePause.objects.filter(queue=queue).exists()

    preview = admin_client_logged_in.get(f"/dashboard/queues/{queue}/purge/").content.decode()
    assert '<strong class="value">7</strong> waiting messages' in preview
    assert broker_depth(redis_client, queue) == 7  # a preview deletes nothing

    admin_client_logged_in.post(f"/dashboard/queues/{queue}/purge/")
    assert broker_depth(redis_client, queue) == 0
    jobs = Job.objects.filter(task_id__in=ids)
    assert {job.status for job in jobs} == {JobStatus.REVOKED}
    assert all(f"Purged from queue {queue} by ops" in job.error for job in jobs)

    assert [e["scope"] for e in entries("pause_queue")] == [f"queue:{queue}"]
    assert [e["scope"] for e in entries("resume_queue")] == [f"queue:{queue}"]
    (purged,) = entries("purge_queue")
    assert purged["count"] == 7
    assert "7 messages deleted, 7 jobs marked revoked" in str(purged["summary"])


def test_without_the_permission_no_buttons_and_forged_posts_get_403(
    read_only_client: Client, queue: str, redis_client: redis.Redis
) -> None:
    count_run.apply_async(("x",), queue=queue)
    html = read_only_client.get("/dashboard/queues/").content.decode()
    assert "Pause</button>" not in html
    assert "Purge" not in row_of(html, queue)

    assert read_only_client.post(f"/dashboard/queues/{queue}/pause/").status_code == 403
    assert read_only_client.post(f"/dashboard/queues/{queue}/resume/").status_code == 403
    assert read_only_client.get(f"/dashboard/queues/{queue}/purge/").status_code == 403
    assert read_only_client.post(f"/dashboard/queues/{queue}/purge/").status_code == 403
    assert not QueuePause.objects.filter(queue=queue).exists()
    assert broker_depth(redis_client, queue) == 1


def test_the_permission_alone_lets_an_operator_pause(queue: str) -> None:
    from dashboard.access import ensure_read_only_group

    user = get_user_model().objects.create_user("queues-op", password=PASSWORD, is_staff=True)
    user.groups.add(ensure_read_only_group())
    user.user_permissions.add(Permission.objects.get(codename="change_queuepause"))
    client = Client()
    client.force_login(user)
    assert client.post(f"/dashboard/queues/{queue}/pause/").status_code == 302
    assert QueuePause.objects.filter(queue=queue).exists()


def test_a_post_without_the_csrf_token_is_refused(queue: str) -> None:
    user = get_user_model().objects.create_superuser("csrf-ops", "c@example.com", PASSWORD)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(f"/dashboard/queues/{queue}/pause/").status_code == 403
    assert not QueuePause.objects.filter(queue=queue).exists()


def test_the_page_renders_when_the_broker_is_down(
    admin_client_logged_in: Client, celery_app: Celery, queue: str
) -> None:
    previous = Broker("redis", celery_app.conf.broker_url, REDIS_TRANSPORT)
    point_app_at(celery_app, Broker("redis", "redis://127.0.0.1:9/0", REDIS_TRANSPORT))
    try:
        response = admin_client_logged_in.get("/dashboard/queues/")
        preview = admin_client_logged_in.get(f"/dashboard/queues/{queue}/purge/")
    finally:
        point_app_at(celery_app, previous)
    assert response.status_code == 200
    assert "The broker did not answer" in response.content.decode()
    assert depth_cell(row_of(response.content.decode(), queue)).endswith("?</span>")
    assert "The broker did not answer" in preview.content.decode()
