"""After a broker loss, in a real browser: the overview's notice, its link to the explorer
listing the re-published jobs, and a re-published job's page. Screenshots of the three
pages at desktop and phone sizes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from tasks.models import BrokerLoss, Job, JobStatus
from tests.support.browser import chromium_page

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

PASSWORD = "s3cret-pass"
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
BECAUSE = "the broker redis://127.0.0.1:6379/0 restarted at 10:41:37 UTC and lost its data"


def shoot(page: Any, directory: Path, name: str) -> None:
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(150)
        page.screenshot(path=str(directory / f"{name}-{size}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})


def test_the_overview_notice_links_the_republished_jobs_and_their_pages_say_so(
    live_server: Any, output_dir: Path
) -> None:
    get_user_model().objects.create_superuser("ops", "ops@example.com", PASSWORD)
    now = timezone.now()
    detected = now - timedelta(minutes=12)
    BrokerLoss.objects.create(
        detected_at=detected,
        detected_by="worker-1@host-a",
        broker="redis://127.0.0.1:6379/0",
        evidence="The marker the layer wrote into the broker is missing; it restarted.",
        restarted_at=detected - timedelta(seconds=25),
        still_held=1,
        republished=3,
        finished_at=detected + timedelta(seconds=1),
    )
    BrokerLoss.objects.create(
        detected_at=now - timedelta(hours=6),
        broker="redis://127.0.0.1:6379/0",
        evidence="The marker is missing.",
        republished=2,
        finished_at=now - timedelta(hours=6),
    )
    ids = []
    for i, status in enumerate((JobStatus.SUCCESS, JobStatus.SUCCESS, JobStatus.SENT)):
        created = detected - timedelta(minutes=2, seconds=i)
        job = Job.objects.create(
            task_id=f"3f0c9a52-lost-{i}",
            name="billing.charge",
            queue="default",
            status=status,
            args=[42 + i],
            kwargs={},
            created_at=created,
            sent_at=created + timedelta(milliseconds=5),
            started_at=detected + timedelta(seconds=4) if status == JobStatus.SUCCESS else None,
            finished_at=detected + timedelta(seconds=5) if status == JobStatus.SUCCESS else None,
            worker="worker-2@host-b" if status == JobStatus.SUCCESS else "",
            attempts=1 if status == JobStatus.SUCCESS else 0,
            recovered_at=detected + timedelta(milliseconds=300),
            recoveries=1,
            recovered_because=BECAUSE,
        )
        ids.append(job.task_id)
    for i in range(5):
        Job.objects.create(
            task_id=f"bystander-{i}",
            name="billing.charge",
            queue="default",
            status=JobStatus.SUCCESS,
            created_at=now - timedelta(minutes=i),
        )
    shots = output_dir / "screenshots" / "dashboard"

    # No ORM calls inside the browser block (playwright's greenlet).
    with chromium_page(shots) as page:
        page.set_viewport_size({"width": 1280, "height": 800})
        page.goto(f"{live_server.url}/admin/login/?next=/dashboard/")
        page.fill("#id_username", "ops")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        notice = page.locator(".broker-loss")
        notice.wait_for()
        text = " ".join(notice.inner_text().split())
        restarted = timezone.localtime(detected - timedelta(seconds=25)).strftime("%H:%M")
        assert text.startswith(f"3 jobs re-published after the broker restarted at {restarted}.")
        assert "still held 1 unfinished job:" in text
        assert "1 earlier loss in the last 24 h (5 jobs re-published in all)." in text
        shoot(page, shots, "overview-broker-loss")

        page.click(".broker-loss a")
        page.locator(".jobs-table").wait_for()
        shown = page.locator(".jobs-table .task-cell .mono").all_inner_texts()
        assert sorted(shown) == sorted(ids)
        assert " recovered:" in page.input_value("#job-filter")
        shoot(page, shots, "jobs-recovered")

        page.goto(f"{live_server.url}/dashboard/jobs/{ids[0]}/")
        line = page.locator(".job-timeline li", has_text="Re-published by the layer")
        line.wait_for()
        assert BECAUSE in line.inner_text()
        assert "re-published by the layer" in page.locator(".job-state").inner_text()
        shoot(page, shots, "job-recovered")
