"""A failure group in a real browser with a real worker: after always_fail jobs the group
appears with its count, and "replay" on the group previews that count, then replays
exactly those jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from demo.tasks import always_fail
from tasks.models import FailureGroup, Job
from tests.support.browser import chromium_page
from tests.support.jobs import wait_for_jobs
from tests.support.worker import WorkerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_replaying_a_failure_group_previews_its_count_then_replays_it(
    live_worker: WorkerProcess, live_server: Any, output_dir: Path
) -> None:
    get_user_model().objects.create_superuser("ops", "ops@example.com", "s3cret-pass")
    failed = [always_fail.delay(f"group member {n}").id for n in range(4)]
    wait_for_jobs(failed, timeout=90)
    group = FailureGroup.objects.get(name="tasks.demo.always_fail")
    shots = output_dir / "screenshots" / "dashboard"

    with chromium_page(shots) as page:
        page.goto(f"{live_server.url}/admin/login/?next=/dashboard/failures/")
        page.fill("#id_username", "ops")
        page.fill("#id_password", "s3cret-pass")
        page.click("input[type=submit]")
        card = page.locator(f"article.failure-group[data-fingerprint='{group.fingerprint}']")
        card.wait_for()
        assert card.locator("[data-count]").inner_text() == "4"
        card.locator("button[data-action=replay]").click()

        preview = page.locator("section.preview")
        preview.wait_for()
        assert preview.locator(".preview-touched .value").inner_text() == "4"
        assert f"fingerprint:{group.fingerprint}" in preview.inner_text()
        page.screenshot(path=str(shots / "failure-group-replay-preview.png"), full_page=True)
        page.click("form.confirm-form button[type=submit]")
        flash = page.locator(".flash-success")
        flash.wait_for()
        assert "Replay dead letters: 4 done" in flash.inner_text()
        assert "/dashboard/failures/" in page.url  # back where the operator was

    replays = Job.objects.filter(retried_from__task_id__in=failed)
    assert sorted(replays.values_list("retried_from__task_id", flat=True)) == sorted(failed)
