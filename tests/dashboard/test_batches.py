"""Batches against a real broker and a real worker: a chord of 50 and a group of 50 with
failures show their progress (Batch counts, the pages, the CSV), and "cancel the rest"
cancels the members still waiting, with a preview, an audit entry and 403 for a forged
POST."""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

import pytest
from celery import chord, group
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

from demo.tasks import add
from plaincelery.tasks import parse_amount, total
from tasks.models import Job, JobStatus
from tasks.observations import Batch, BatchKind
from tests.support.jobs import wait_for_job
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.django_db(transaction=True)

FAILING_POSITIONS = {3, 13, 23, 33, 43}


def wait_for_batch(group_id: str, done: int, timeout: float = 60.0) -> Batch:
    deadline = time.monotonic() + timeout
    batch = None
    while time.monotonic() < deadline:
        batch = Batch.objects.filter(group_id=group_id).first()
        if batch is not None and batch.done >= done:
            return batch
        time.sleep(0.2)
    raise AssertionError(f"batch {group_id} did not reach {done} done; last seen: {batch}")


def csv_rows(client: Client, group_id: str) -> list[dict[str, str]]:
    response = client.get(reverse("dashboard:batch-export", args=[group_id]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == [
        "task_id",
        "position",
        "status",
        "error",
        "duration_ms",
        "finished_at",
    ]
    return list(reader)


def test_a_chord_of_50_shows_its_progress_callback_and_csv(
    live_worker: WorkerProcess, admin_client_logged_in: Client
) -> None:
    result = chord([add.s(i, i) for i in range(50)])(total.s())
    assert result.get(timeout=90) == sum(2 * i for i in range(50))
    group_id = result.parent.id
    batch = wait_for_batch(group_id, 50)
    assert (batch.kind, batch.name, batch.callback_id) == (
        BatchKind.CHORD,
        "tasks.demo.add",
        result.id,
    )
    assert (batch.total, batch.succeeded, batch.failed, batch.cancelled) == (50, 50, 0, 0)
    assert batch.last_finished_at is not None
    wait_for_job(result.id)

    client = admin_client_logged_in
    page = client.get(reverse("dashboard:batch", args=[group_id]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "50/50" in html
    assert "complete" in html
    assert f'href="/dashboard/jobs/{result.id}/"' in html  # the callback's job
    assert f"batch%3A{group_id}" in html  # its jobs in the explorer
    chart = json.loads(
        html.split('id="chart-batch-progress" type="application/json">')[1].split("</script>")[0]
    )
    assert chart["datasets"][0]["data"][-1] == 50

    listing = client.get(reverse("dashboard:batches-live")).content.decode()
    assert f'data-group-id="{group_id}"' in listing

    rows = csv_rows(client, group_id)
    assert [int(row["position"]) for row in rows] == list(range(50))
    assert {row["status"] for row in rows} == {JobStatus.SUCCESS}
    assert all(row["duration_ms"].isdigit() and row["finished_at"] for row in rows)
    members = dict(
        Job.objects.in_group(group_id)
        .filter(group_index__isnull=False)
        .values_list("group_index", "task_id")
    )
    assert [row["task_id"] for row in rows] == [members[i] for i in range(50)]
    assert result.id not in {row["task_id"] for row in rows}  # the body is no member


def test_a_group_of_50_with_failures_counts_each_member_once(
    live_worker: WorkerProcess, admin_client_logged_in: Client
) -> None:
    result = group(
        parse_amount.s("=1+1" if i in FAILING_POSITIONS else str(i)) for i in range(50)
    ).apply_async()
    result.join(timeout=90, propagate=False)
    batch = wait_for_batch(result.id, 50)
    # The last events may still be on their way: the counts settle, never overshoot.
    time.sleep(1.0)
    batch.refresh_from_db()
    assert (batch.kind, batch.name) == (BatchKind.GROUP, "plaincelery.tasks.parse_amount")
    assert (batch.total, batch.succeeded, batch.failed, batch.cancelled) == (50, 45, 5, 0)

    client = admin_client_logged_in
    live = client.get(reverse("dashboard:batch-live", args=[result.id])).content.decode()
    assert "with failures" in live
    assert "Failed members" in live

    rows = csv_rows(client, result.id)
    assert [int(row["position"]) for row in rows] == list(range(50))
    for row in rows:
        position = int(row["position"])
        if position in FAILING_POSITIONS:
            assert row["status"] == JobStatus.FAILURE
            assert "ValueError" in row["error"]
        else:
            assert row["status"] == JobStatus.SUCCESS
            assert row["error"] == ""


def test_cancel_the_rest_cancels_waiting_members_with_preview_and_audit(
    live_worker: WorkerProcess,
    admin_client_logged_in: Client,
    read_only_client: Client,
) -> None:
    result = group(add.s(i, i) for i in range(8)).apply_async(countdown=600)
    group_id = result.id
    batch = Batch.objects.get(group_id=group_id)
    assert (batch.total, batch.done) == (8, 0)
    url = reverse("dashboard:batch-cancel", args=[group_id])

    # Without the permission: 403 for the preview and for a forged confirm.
    assert read_only_client.post(url).status_code == 403
    assert read_only_client.post(url, {"confirm": "1"}).status_code == 403
    assert read_only_client.get(reverse("dashboard:batch", args=[group_id])).status_code == 200
    assert (
        "Cancel the rest"
        not in read_only_client.get(reverse("dashboard:batch", args=[group_id])).content.decode()
    )
    # A GET never acts.
    assert admin_client_logged_in.get(url).status_code == 405

    preview = admin_client_logged_in.post(url)
    assert preview.status_code == 200
    assert '<strong class="value">8</strong>' in preview.content.decode()
    assert Job.objects.in_group(group_id).filter(cancel_requested_at__isnull=False).count() == 0

    done = admin_client_logged_in.post(url, {"confirm": "1"}, follow=True)
    assert done.status_code == 200
    assert "8 cancelled" in done.content.decode()
    batch = wait_for_batch(group_id, 8, timeout=30)
    assert (batch.cancelled, batch.succeeded, batch.total) == (8, 0, 8)
    assert set(Job.objects.in_group(group_id).values_list("status", flat=True)) == {
        JobStatus.REVOKED
    }
    entry = LogEntry.objects.order_by("-action_time").first()
    assert entry is not None
    detail: dict[str, Any] = json.loads(entry.change_message)["dashboard"]
    assert detail["action"] == "cancel_rest"
    assert detail["scope"] == f"batch:{group_id}"
    assert detail["count"] == 8

    # Nothing left: a second request cancels nothing and says so.
    again = admin_client_logged_in.post(url)
    assert "already finished" in again.content.decode()


def test_csrf_is_required_for_cancel_the_rest(admin_client_logged_in: Client) -> None:
    Batch.objects.create(group_id="g-csrf", total=1, created_at="2026-01-01T00:00:00Z")
    client = Client(enforce_csrf_checks=True)
    client.force_login(_superuser())
    response = client.post(reverse("dashboard:batch-cancel", args=["g-csrf"]), {"confirm": "1"})
    assert response.status_code == 403


def _superuser() -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username="ops")


def test_pages_need_the_view_permission(staff_without_view_client: Client) -> None:
    Batch.objects.create(group_id="g-private", total=1, created_at="2026-01-01T00:00:00Z")
    for url in (
        reverse("dashboard:batches"),
        reverse("dashboard:batch", args=["g-private"]),
        reverse("dashboard:batch-export", args=["g-private"]),
    ):
        assert staff_without_view_client.get(url).status_code == 403


def test_an_unknown_batch_is_404(admin_client_logged_in: Client) -> None:
    assert admin_client_logged_in.get(reverse("dashboard:batch", args=["nope"])).status_code == 404
