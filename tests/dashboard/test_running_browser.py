"""Running now and the job page in a real browser, against a real worker: a
`sleep_with_progress` job's bar advances without a reload, its page shows the progress,
and a per-row cancel goes through the preview. Screenshots at both sizes, light and dark."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from demo.tasks import add, always_fail, sleep_with_progress
from tasks import correlation
from tasks.models import JobStatus
from tests.support.browser import chromium_page
from tests.support.jobs import wait_for_job
from tests.support.worker import WorkerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

PASSWORD = "s3cret-pass"
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}


def shoot(page: Any, directory: Path, name: str) -> None:
    """The page at both sizes, light and dark; back to light at desktop size after."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for size, (width, height) in SIZES.items():
            page.set_viewport_size({"width": width, "height": height})
            page.screenshot(path=str(directory / f"{name}-{size}-{scheme}.png"), full_page=True)
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 1280, "height": 800})


def progress_of(page: Any, selector: str) -> float:
    value = page.locator(selector).get_attribute("value")
    return float(value or 0)


def test_running_bar_advances_live_and_the_job_page_shows_it(
    live_worker: WorkerProcess, live_server: Any, output_dir: Path
) -> None:
    get_user_model().objects.create_superuser("ops", "ops@example.com", PASSWORD)
    shots = output_dir / "screenshots" / "dashboard"
    # One request's jobs (a shared correlation id): the failed job's trace draws them all.
    with correlation.bound(f"req-{uuid.uuid4().hex[:8]}"):
        sleeper = sleep_with_progress.delay(30, 30)
        failing = always_fail.delay("card <b>declined</b>")
        chained = (add.s(1, 2) | add.s(3)).delay()
    wait_for_job(failing.id, timeout=60)
    wait_for_job(chained.id, timeout=30)
    started = wait_for_job(sleeper.id, statuses=[JobStatus.STARTED], timeout=30)
    assert started.progress < 100

    # No ORM calls inside the browser block (playwright's greenlet would get a
    # connection of its own): everything below goes through the pages.
    row_bar = f"tr[data-task-id='{sleeper.id}'] progress"
    with chromium_page(shots) as page:
        page.set_viewport_size({"width": 1280, "height": 800})
        page.goto(f"{live_server.url}/admin/login/?next=/dashboard/running/")
        page.fill("#id_username", "ops")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.locator(row_bar).wait_for()
        # live.js (deferred) shows the control once it has found the live table.
        page.locator("[data-refresh]").wait_for(state="visible")
        page.select_option("[data-refresh-control]", "2")
        page.evaluate("window.__sameDocument = true")
        url = page.url
        before = progress_of(page, row_bar)
        page.wait_for_function(
            """([selector, before]) => {
                const bar = document.querySelector(selector);
                return bar !== null && parseFloat(bar.getAttribute("value") || "0") > before;
            }""",
            arg=[row_bar, before],
            timeout=15_000,
        )
        assert progress_of(page, row_bar) > before
        assert page.evaluate("window.__sameDocument") is True  # swapped, not reloaded
        assert page.url == url
        assert page.evaluate("localStorage.getItem('dashboard.refresh')") == "2"
        shoot(page, shots, "running")

        # The job's own page: its live state shows the progress and keeps refreshing.
        page.click(f"tr[data-task-id='{sleeper.id}'] a[href='/dashboard/jobs/{sleeper.id}/']")
        live_bar = ".job-live progress"
        page.locator(live_bar).wait_for()
        first = progress_of(page, live_bar)
        assert first > 0
        assert "sleep_with_progress" in page.locator("h1").inner_text()
        assert page.locator(".job-live .badge.status-started").count() == 1
        page.wait_for_function(
            """([selector, before]) => {
                const bar = document.querySelector(selector);
                return bar !== null && parseFloat(bar.getAttribute("value") || "0") > before;
            }""",
            arg=[live_bar, first],
            timeout=15_000,
        )
        assert page.locator("button[data-action=cancel]").count() == 1
        shoot(page, shots, "job-running")

        # The failed job: attempts, escaped error, traceback, the request's trace.
        page.goto(f"{live_server.url}/dashboard/jobs/{failing.id}/")
        page.locator("table.attempts").wait_for()
        assert page.locator("table.attempts tbody tr").count() == 4  # 3 retries, then failure
        assert "card <b>declined</b>" in page.locator("pre.job-error").inner_text()
        assert page.locator("pre.job-error b").count() == 0
        assert page.locator(".trace .trace-bar").count() == 4  # sleeper, failing, 2 chained
        assert page.locator("button[data-action=retry]").count() == 1
        shoot(page, shots, "job-failed")

        # The chain's second link: a parent and root in its family.
        page.goto(f"{live_server.url}/dashboard/jobs/{chained.id}/")
        family = page.locator(".job-family")
        family.wait_for()
        assert family.locator(f"a[href='/dashboard/jobs/{chained.parent.id}/']").count() >= 1
        shoot(page, shots, "job-chained")

        # Cancel the sleeper from its row: preview, confirm, back to an empty list.
        page.goto(f"{live_server.url}/dashboard/running/")
        page.click(f"tr[data-task-id='{sleeper.id}'] form.row-action button")
        page.locator(".preview-touched").wait_for()
        assert page.locator(".preview-touched .value").inner_text() == "1"
        page.click("form.confirm-form button[type=submit]")
        page.wait_for_url(f"{live_server.url}/dashboard/running/")
        page.locator(".running-empty").wait_for(timeout=20_000)
        shoot(page, shots, "running-empty")

    job = wait_for_job(sleeper.id, timeout=20)
    assert job.status == JobStatus.REVOKED
