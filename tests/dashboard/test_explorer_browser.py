"""The jobs explorer in a real browser with a real worker: a filter by time range and
error text, replaying what it matches through the preview, the audit trail, redaction
on pages and in the CSV, and a read-only operator who sees no action and gets 403."""

from __future__ import annotations

import urllib.parse
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from dashboard.access import ensure_read_only_group
from demo.tasks import always_fail, send_receipt
from tasks.models import Job
from tests.support.browser import chromium_page
from tests.support.jobs import wait_for_job, wait_for_jobs
from tests.support.worker import WorkerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

PASSWORD = "s3cret-pass"
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}


def _login(page: Any, base: str, username: str, target: str) -> None:
    page.goto(f"{base}/admin/login/?next={urllib.parse.quote(target)}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"**{target.split('?')[0]}*")


def _shoot(page: Any, shots: Path, name: str) -> None:
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(shots / f"{name}-{size}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})


def test_filter_replay_audit_and_redaction_in_the_browser(
    live_worker: WorkerProcess, live_server: Any, output_dir: Path
) -> None:
    get_user_model().objects.create_superuser("ops", "ops@example.com", PASSWORD)
    marker = f"boom-{uuid.uuid4().hex[:6]}"
    start = timezone.now() - timedelta(seconds=1)
    failed = [always_fail.delay(marker).id for _ in range(3)]
    other = always_fail.delay("something else").id
    receipt = send_receipt.delay(7, email="ann@example.com", api_token="tok-xyz").id
    wait_for_jobs([*failed, other, receipt], timeout=90)
    receipt_pk = Job.objects.get(task_id=receipt).pk
    shots = output_dir / "screenshots" / "dashboard"
    # No ORM call inside the browser block: playwright's greenlet would get a database
    # connection of its own, which a PostgreSQL restart by an earlier test leaves dead.

    with chromium_page(shots) as page:
        query = f'task:tasks.demo.always_fail after:{start.isoformat()} error:"{marker}"'
        _login(
            page, live_server.url, "ops", "/dashboard/jobs/?" + urllib.parse.urlencode({"q": query})
        )
        rows = page.locator("table.jobs-table tbody tr")
        assert rows.count() == 3
        shown = {rows.nth(i).locator(".task-cell .mono").inner_text() for i in range(3)}
        assert shown == set(failed)
        _shoot(page, shots, "explorer")

        page.select_option("#bulk-action", "replay")
        page.click("button[name=scope][value=all]")
        preview = page.locator("section.preview")
        preview.wait_for()
        assert "3" in preview.locator(".preview-touched .value").inner_text()
        _shoot(page, shots, "action-preview")
        page.click("form.confirm-form button[type=submit]")
        page.locator(".flash-success").wait_for()
        assert "3 done" in page.locator(".flash-success").inner_text()

        page.goto(f"{live_server.url}/dashboard/activity/")
        assert "Replay dead letters: 3 done" in page.locator("table.activity-table").inner_text()
        _shoot(page, shots, "activity")

        for url in (
            "/dashboard/jobs/?q=task:tasks.demo.send_receipt",
            f"/dashboard/jobs/{receipt}/",
            f"/admin/tasklayer/job/{receipt_pk}/change/",
        ):
            page.goto(live_server.url + url)
            html = page.content()
            assert "ann@example.com" not in html, url
            assert "tok-xyz" not in html, url
        csv_body = page.request.get(
            f"{live_server.url}/dashboard/jobs/export.csv?q=task:tasks.demo.send_receipt"
        ).text()
        assert receipt in csv_body
        assert "ann@example.com" not in csv_body
        assert "tok-xyz" not in csv_body
    assert Job.objects.filter(retried_from__task_id__in=failed).count() == 3
    stored = Job.objects.get(task_id=receipt)
    assert stored.kwargs == {"email": "ann@example.com", "api_token": "tok-xyz"}  # kept for replay


def test_a_read_only_operator_sees_no_action_and_a_forged_post_gets_403(
    live_worker: WorkerProcess, live_server: Any, output_dir: Path
) -> None:
    viewer = get_user_model().objects.create_user("viewer", password=PASSWORD, is_staff=True)
    viewer.groups.add(ensure_read_only_group())
    job_id = always_fail.delay("read-only check").id
    wait_for_job(job_id, timeout=60)
    shots = output_dir / "screenshots" / "dashboard"

    with chromium_page(shots) as page:
        _login(page, live_server.url, "viewer", "/dashboard/jobs/")
        page.locator("table.jobs-table").wait_for()
        assert page.locator("#bulk-action").count() == 0
        assert page.locator("input[name=task_id]").count() == 0
        page.goto(f"{live_server.url}/dashboard/jobs/{job_id}/")
        assert page.locator("form[action$='/actions/preview/'] button").count() == 0
        _shoot(page, shots, "job-read-only")
        token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
        response = page.request.post(
            f"{live_server.url}/dashboard/actions/apply/",
            form={"action": "replay", "task_id": job_id, "csrfmiddlewaretoken": token},
            headers={"Referer": f"{live_server.url}/dashboard/jobs/"},
        )
        assert response.status == 403
    assert not Job.objects.filter(retried_from__task_id=job_id).exists()
