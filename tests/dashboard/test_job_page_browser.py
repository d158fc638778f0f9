"""The job's admin page in a real browser: a retried job shows its attempt history."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from demo.tasks import flaky
from tests.support.browser import chromium_page
from tests.support.jobs import wait_for_job
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_retried_job_page_lists_each_attempt(
    live_worker: WorkerProcess, live_server: Any, output_dir: Path
) -> None:
    get_user_model().objects.create_superuser("ops", "ops@example.com", "s3cret-pass")
    key = f"<b>{uuid.uuid4().hex[:6]}</b>"  # user text: must show escaped
    job = wait_for_job(flaky.delay(key, 2).id, timeout=40)
    assert job.status == "SUCCESS"

    with chromium_page(output_dir / "screenshots") as page:
        page.goto(f"{live_server.url}/admin/login/?next=/admin/tasklayer/job/{job.pk}/change/")
        page.fill("#id_username", "ops")
        page.fill("#id_password", "s3cret-pass")
        page.click("input[type=submit]")
        table = page.locator("table.attempt-history")
        table.wait_for()
        page.screenshot(
            path=str(output_dir / "screenshots" / "job-attempt-history.png"), full_page=True
        )
        rows = table.locator("tbody tr")
        assert rows.count() == 3
        outcomes = [rows.nth(i).locator("td").nth(1).inner_text() for i in range(3)]
        assert outcomes == ["RETRY", "RETRY", "SUCCESS"]
        assert live_worker.name in rows.nth(0).inner_text()
        assert f"attempt 1 for '{key}' fails on purpose" in rows.nth(0).inner_text()
        assert page.locator("table.attempt-history b").count() == 0  # escaped, not markup
    job.refresh_from_db()
    assert job.error == ""  # the earlier attempts' errors are history, not the outcome
    assert job.parent_id == ""  # a retry is not its own child
