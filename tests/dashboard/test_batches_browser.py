"""The batches pages in a real browser, against a real worker: the list shows a finished
chord, a group with failures and a waiting group; a batch's page draws its progress
chart; "cancel the rest" goes through its preview. Screenshots at both sizes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from celery import chord, group
from django.contrib.auth import get_user_model

from demo.tasks import add
from plaincelery.tasks import parse_amount, total
from tasks.observations import Batch
from tests.support.browser import chromium_page
from tests.support.worker import WorkerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

PASSWORD = "s3cret-pass"
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}


def shoot(page: Any, directory: Path, name: str) -> None:
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        # Chart.js resizes its canvas on the next frames after the viewport changes.
        page.wait_for_timeout(400)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, name
        page.screenshot(path=str(directory / f"{name}-{size}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})


def wait_done(group_id: str, done: int, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = Batch.objects.filter(group_id=group_id).first()
        if batch is not None and batch.done >= done:
            return
        time.sleep(0.2)
    raise AssertionError(f"batch {group_id} did not reach {done} done")


def test_batches_list_and_page_in_a_browser(
    live_worker: WorkerProcess, live_server: Any, output_dir: Path
) -> None:
    get_user_model().objects.create_superuser("ops", "ops@example.com", PASSWORD)
    shots = output_dir / "screenshots" / "dashboard"
    finished = chord([add.s(i, i) for i in range(50)])(total.s())
    failing = group(
        parse_amount.s("oops" if i % 9 == 4 else str(i)) for i in range(50)
    ).apply_async()
    waiting = group(add.s(i, 1) for i in range(12)).apply_async(countdown=900)
    finished.get(timeout=90)
    wait_done(finished.parent.id, 50)
    wait_done(failing.id, 50)

    # No ORM calls inside the browser block: everything below goes through the pages.
    with chromium_page(shots) as page:
        page.set_viewport_size({"width": 1280, "height": 800})
        page.goto(f"{live_server.url}/admin/login/?next=/dashboard/batches/")
        page.fill("#id_username", "ops")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        rows = page.locator("table.batches-table tbody tr")
        rows.first.wait_for()
        assert rows.count() >= 3
        waiting_row = page.locator(f"tr[data-group-id='{waiting.id}']")
        assert "running" in waiting_row.locator(".batch-state").inner_text()
        assert "0/12" in waiting_row.inner_text()
        failing_row = page.locator(f"tr[data-group-id='{failing.id}']")
        assert "with failures" in failing_row.locator(".batch-state").inner_text()
        assert failing_row.locator(".c-failed").inner_text().strip() == "6"
        chord_row = page.locator(f"tr[data-group-id='{finished.parent.id}']")
        assert "complete" in chord_row.locator(".batch-state").inner_text()
        assert "50/50" in chord_row.inner_text()
        shoot(page, shots, "batches")

        # The group with failures: counts, chart drawn, failed members listed.
        failing_row.locator(".c-batch a").click()
        page.locator(".batch-cards").wait_for()
        assert page.locator("[data-card=failed] .value").inner_text() == "6"
        assert page.locator(".batch-failed-table tbody tr").count() == 6
        page.wait_for_function(
            "() => { const c = document.querySelector('canvas[data-chart]');"
            " return c !== null && c.width > 0 && window.Chart && Chart.getChart(c); }"
        )
        shoot(page, shots, "batch-failures")

        # The chord: its callback's job is linked.
        page.goto(f"{live_server.url}/dashboard/batches/{finished.parent.id}/")
        page.locator(f".batch-callback a[href='/dashboard/jobs/{finished.id}/']").wait_for()
        shoot(page, shots, "batch-chord")

        # The waiting group: cancel the rest through the preview.
        page.goto(f"{live_server.url}/dashboard/batches/{waiting.id}/")
        page.click(".batch-cancel-form button")
        page.locator(".preview-touched").wait_for()
        assert page.locator(".preview-touched .value").inner_text() == "12"
        shoot(page, shots, "batch-cancel-preview")
        page.click("form.confirm-form button[type=submit]")
        page.wait_for_url(f"{live_server.url}/dashboard/batches/{waiting.id}/")
        assert "12 cancelled" in page.locator(".flash").inner_text()
        page.select_option("[data-refresh-control]", "2")
        page.wait_for_function(
            "() => document.querySelector('[data-card=cancelled] .value').textContent.trim()"
            " === '12'",
            timeout=30_000,
        )
        shoot(page, shots, "batch-cancelled")
