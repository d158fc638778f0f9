"""The queues page in a real browser over the real Redis broker: a backlog and a paused
queue as an operator sees them, pausing from the page, and a purge through its preview.
Screenshots at 1280x800 and 390x844, light and dark."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.utils import timezone
from kombu import Exchange, Queue

from tasks.models import QueuePause
from tasks.observations import JobTally, Period
from tasks.operations import pause_queue
from tests.faults import count_run
from tests.support.broker import clear_queue
from tests.support.browser import chromium_page

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


@pytest.fixture
def queues(celery_app: Celery, redis_client: redis.Redis) -> Iterator[tuple[str, str]]:
    tag = uuid.uuid4().hex[:6]
    names = (f"reports-{tag}", f"emails-{tag}")
    previous = celery_app.conf.task_queues
    celery_app.conf.task_queues = (
        *previous,
        *(Queue(name, Exchange(name), routing_key=name) for name in names),
    )
    try:
        yield names
    finally:
        celery_app.conf.task_queues = previous
        for name in names:
            clear_queue(redis_client, name)


def test_queues_page_shows_a_backlog_and_a_paused_queue_and_purges_through_a_preview(
    live_server: Any, output_dir: Path, queues: tuple[str, str], settings: Any
) -> None:
    settings.TASKS_DASHBOARD_SHARED_SECONDS = 0
    backlog, paused = queues
    get_user_model().objects.create_superuser("ops", "ops@example.com", PASSWORD)
    for i in range(12):
        count_run.apply_async((f"r{i}",), queue=backlog, priority=i % 10)
    for i in range(3):
        count_run.apply_async((f"e{i}",), queue=paused)
    pause_queue(paused, by="ops")
    minute = timezone.now().replace(second=0, microsecond=0)
    JobTally.objects.create(
        period=Period.MINUTE,
        start=minute - timedelta(minutes=1),
        name="tests.faults.count_run",
        queue=backlog,
        status="SUCCESS",
        count=30,
        wait_count=30,
        wait_ms_total=30 * 1500,
    )
    shots = output_dir / "screenshots" / "dashboard"

    # No ORM calls inside the browser block.
    with chromium_page(shots) as page:
        page.set_viewport_size({"width": 1280, "height": 800})
        page.goto(f"{live_server.url}/admin/login/?next=/dashboard/queues/")
        page.fill("#id_username", "ops")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        backlog_row = page.locator(f"tr[data-queue='{backlog}']")
        paused_row = page.locator(f"tr[data-queue='{paused}']")
        assert backlog_row.locator(".c-depth").inner_text().strip() == "12"
        assert paused_row.locator(".c-depth").inner_text().strip() == "3"
        assert paused_row.locator(".chip-paused").is_visible()
        assert "not while paused" in paused_row.locator(".c-drain").inner_text()
        assert "min" in backlog_row.locator(".c-drain").inner_text()
        shoot(page, shots, "queues")

        backlog_row.get_by_role("button", name="Pause").click()
        page.wait_for_url(f"{live_server.url}/dashboard/queues/")
        assert page.locator(f"tr[data-queue='{backlog}'] .chip-paused").is_visible()

        page.locator(f"tr[data-queue='{backlog}']").get_by_role("link", name="Purge…").click()
        assert page.locator(".preview-touched .value").inner_text() == "12"
        shoot(page, shots, "queue-purge-preview")
        page.get_by_role("button", name="Purge 12 messages").click()
        page.wait_for_url(f"{live_server.url}/dashboard/queues/")
        assert page.locator(f"tr[data-queue='{backlog}'] .c-depth").inner_text().strip() == "0"
        assert "12 messages deleted" in page.locator(".messages, .flash").first.inner_text()

    assert QueuePause.objects.filter(queue__in=queues).count() == 2
    actions = [
        json.loads(entry.change_message)["dashboard"]["action"]
        for entry in LogEntry.objects.order_by("pk")
    ]
    assert actions == ["pause_queue", "purge_queue"]
