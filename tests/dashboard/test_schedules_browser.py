"""The Schedules page in a real browser, against the real worker: "Run now" (confirmed)
records a job, linked from the page's message and, once it finished, from the schedule's
row without a reload. Screenshots at 1280x800 and 390x844, light and dark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
)

from tests.support.browser import chromium_page
from tests.support.worker import WorkerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

PASSWORD = "s3cret-pass"
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}


def shoot(page: Any, directory: Path, name: str) -> None:
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for size, (width, height) in SIZES.items():
            page.set_viewport_size({"width": width, "height": height})
            page.screenshot(path=str(directory / f"{name}-{size}-{scheme}.png"), full_page=True)
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 1280, "height": 800})


def test_run_now_from_the_page_shows_the_job_and_the_schedules_in_words(
    live_worker: WorkerProcess, live_server: Any, output_dir: Path
) -> None:
    get_user_model().objects.create_superuser("ops", "ops@example.com", PASSWORD)
    shots = output_dir / "screenshots" / "dashboard"
    weekdays = CrontabSchedule.objects.create(
        minute="30", hour="7", day_of_week="1-5", timezone="Europe/Paris"
    )
    interval, _ = IntervalSchedule.objects.get_or_create(every=15, period="minutes")
    target = PeriodicTask.objects.create(
        name="Sum the day's orders",
        task="tasks.demo.add",
        interval=interval,
        args="[40, 2]",
        description="Adds two numbers; stands in for a report.",
    )
    PeriodicTask.objects.create(
        name="Morning receipts",
        task="tasks.demo.send_receipt",
        crontab=weekdays,
        kwargs='{"order_id": 7, "email": "a@example.com"}',
    )
    PeriodicTask.objects.create(
        name="Launch announcement",
        task="tasks.demo.noop",
        clocked=ClockedSchedule.objects.create(
            clocked_time=timezone.now() + timezone.timedelta(days=3)
        ),
        one_off=True,
        args="[1]",
    )
    PeriodicTask.objects.create(
        name="Paused export",
        task="billing.export",
        interval=interval,
        enabled=False,
    )
    PeriodicTask.objects.create(
        name="celery.backend_cleanup",
        task="celery.backend_cleanup",
        crontab=CrontabSchedule.objects.create(minute="0", hour="4", timezone="UTC"),
    )
    row = f"tr[data-schedule-id='{target.pk}']"

    with chromium_page(shots) as page:
        page.goto(f"{live_server.url}/admin/login/?next=/dashboard/schedules/")
        page.fill("#id_username", "ops")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.locator(row).wait_for()
        assert "At 07:30, Monday to Friday" in page.locator("table.schedules-table").inner_text()
        page.locator("[data-refresh]").wait_for(state="visible")
        page.select_option("[data-refresh-control]", "2")

        page.once("dialog", lambda dialog: dialog.accept())
        page.click(f"{row} button[data-action=run]")
        flash = page.locator(".flash-success a")
        flash.wait_for()
        job_url = flash.get_attribute("href")
        assert job_url is not None
        assert job_url.startswith("/dashboard/jobs/")
        # The finished job appears in the row, refreshed in place.
        page.locator(f"{row} .schedule-jobs a[href='{job_url}'] .badge.status-success").wait_for(
            timeout=30_000
        )
        shoot(page, shots, "schedules")

        page.click(f"{row} .schedule-jobs a[href='{job_url}']")
        page.locator(".job-live .badge.status-success").wait_for()
        assert "tasks.demo.add" in page.locator("h1").inner_text()
