"""The Workers page in a real browser against real workers on the real Redis broker:
one worker online, one killed with SIGKILL (shown lost, its running job at risk, here
and on the Running page); the online one's pool grown from the page, then shut down
through the preview, and shown stopped. Screenshots at 1280x800 and 390x844, light
and dark.

The workers beat every second (TASKS_HEARTBEAT_INTERVAL=1) and this process (and its
live server) judges by the same 3 s window."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.contrib.auth import get_user_model

from demo.tasks import add, sleep_with_progress
from devstack.redis_server import RedisServer
from tasks.models import JobStatus
from tasks.operations import WorkerStatus, worker_states
from tests.conftest import worker_env
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


@pytest.fixture
def workers(
    celery_app: Celery, redis_server: RedisServer, output_dir: Path
) -> Iterator[Callable[[str], WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(tag: str) -> WorkerProcess:
        env = worker_env(redis_server.url, side_redis_url=redis_server.url)
        env["TASKS_HEARTBEAT_INTERVAL"] = "1"
        worker = WorkerProcess(
            app=celery_app,
            env=env,
            queues=f"browser-{tag}-{uuid.uuid4().hex[:6]}",
            concurrency=1,
            name=f"{tag}-{uuid.uuid4().hex[:4]}@localhost",
            log_path=output_dir / "logs" / f"worker-browser-{tag}.log",
        ).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def status_of(hostname: str) -> WorkerStatus | None:
    return next((s.status for s in worker_states() if s.hostname == hostname), None)


def wait_until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s")


def test_workers_page_shows_a_lost_worker_and_steers_an_online_one(
    workers: Callable[[str], WorkerProcess],
    live_server: Any,
    output_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    settings.TASKS_HEARTBEAT_INTERVAL = 1
    settings.TASKS_FLOWER_URL = "http://127.0.0.1:5555/"
    get_user_model().objects.create_superuser("ops", "ops@example.com", PASSWORD)
    shots = output_dir / "screenshots" / "dashboard"

    alive, doomed = workers("billing"), workers("reports")
    for result in [add.apply_async((i, i), queue=alive.queues) for i in range(3)]:
        assert wait_for_job(result.id).status == JobStatus.SUCCESS
    victim = sleep_with_progress.apply_async((120, 120), queue=doomed.queues)
    wait_for_job(victim.id, statuses=[JobStatus.STARTED])
    assert doomed.process is not None
    os.kill(doomed.process.pid, signal.SIGKILL)
    wait_until(lambda: status_of(doomed.name) is WorkerStatus.LOST)
    wait_until(lambda: any(s.processed == 3 for s in worker_states() if s.hostname == alive.name))

    # No ORM calls inside the browser block: everything below goes through the pages.
    alive_row = f"tr[data-worker='{alive.name}']"
    lost_row = f"tr[data-worker='{doomed.name}']"
    with chromium_page(shots) as page:
        page.set_viewport_size({"width": 1280, "height": 800})
        page.goto(f"{live_server.url}/admin/login/?next=/dashboard/workers/")
        page.fill("#id_username", "ops")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.locator(lost_row).wait_for()
        page.locator("[data-refresh]").wait_for(state="visible")
        page.select_option("[data-refresh-control]", "2")

        # Lost first, its running job at risk and linked; the online one beside it.
        first = page.locator("table.workers-table tbody tr").first
        assert first.get_attribute("data-worker") == doomed.name
        assert page.locator(f"{lost_row} .badge.worker-lost").count() == 1
        assert page.locator(f"{lost_row} .chip.at-risk").count() == 1
        assert page.locator(f"{lost_row} li.at-risk-job[data-task-id='{victim.id}'] a").count() == 1
        assert page.locator(f"{lost_row} button").count() == 0
        assert page.locator(f"{alive_row} .badge.worker-online").count() == 1
        assert page.locator(f"{alive_row} .c-processed").inner_text().strip() == "3"
        assert page.locator(f"{alive_row} .c-failed").inner_text().strip() == "0"
        assert page.locator(f"{alive_row} .worker-concurrency").inner_text() == "1"
        flower = page.locator(f"{alive_row} a.flower-link").get_attribute("href")
        assert flower == f"http://127.0.0.1:5555/worker/{alive.name}"
        shoot(page, shots, "workers")

        # The Running page marks the lost worker's job.
        page.goto(f"{live_server.url}/dashboard/running/")
        page.locator(f"tr[data-task-id='{victim.id}'] .chip.at-risk").wait_for()
        shoot(page, shots, "running-at-risk")

        # Grow the online worker's pool: the answer, then the new size by live refresh.
        page.goto(f"{live_server.url}/dashboard/workers/")
        page.click(f"{alive_row} form:has(input[value=grow]) button")
        page.locator(".flash-success").wait_for()
        assert "pool will grow" in page.locator(".flash-success").inner_text()
        page.wait_for_function(
            """(selector) => {
                const cell = document.querySelector(selector);
                return cell !== null && cell.textContent.trim() === "2";
            }""",
            arg=f"{alive_row} .worker-concurrency",
            timeout=15_000,
        )

        # Shut it down: the preview first, then the confirmed warm shutdown.
        page.click(f"{alive_row} .shutdown-form button")
        page.locator(".worker-shutdown-preview").wait_for()
        assert page.locator(".preview-touched .value").inner_text() == "0"
        shoot(page, shots, "workers-shutdown-preview")
        page.click("form.confirm-form button[type=submit]")
        page.wait_for_url(f"{live_server.url}/dashboard/workers/")
        assert "Asked" in page.locator(".flash-success").inner_text()
        page.locator(f"{alive_row}[data-status=stopped]").wait_for(timeout=20_000)
        shoot(page, shots, "workers-stopped")

    assert alive.process is not None
    assert alive.process.wait(timeout=20) == 0
    assert status_of(alive.name) is WorkerStatus.STOPPED
    assert status_of(doomed.name) is WorkerStatus.LOST
