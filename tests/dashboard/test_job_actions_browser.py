"""Operator actions in the job admin, in a real browser, against a real worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from demo.tasks import always_fail, sleep_with_progress
from tasks.models import DeadLetterResolution, Job, JobStatus
from tests.support.browser import chromium_page
from tests.support.jobs import wait_for_job
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "s3cret-pass"


def log_in(page: Any, base_url: str, username: str, next_path: str) -> None:
    page.goto(f"{base_url}/admin/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")


def run_action(page: Any, base_url: str, job: Job, label: str, shot: Path) -> str:
    """Select one job in the change list, run the action labelled `label`, return the
    messages the admin shows."""
    page.goto(f"{base_url}/admin/tasklayer/job/?q={job.task_id}")
    page.check(f"input[name=_selected_action][value='{job.pk}']")
    page.select_option("select[name=action]", label=label)
    page.click("button[name=index]")
    page.locator("ul.messagelist").wait_for()
    page.screenshot(path=str(shot), full_page=True)
    return page.locator("ul.messagelist").inner_text()


def test_operator_replays_a_dead_letter_and_cancels_a_running_job(
    live_worker: WorkerProcess, live_server: Any, output_dir: Path
) -> None:
    admin = get_user_model().objects.create_superuser("ops", "ops@example.com", PASSWORD)
    shots = output_dir / "screenshots"
    dead = wait_for_job(always_fail.delay("card declined").id, timeout=40)
    assert dead.dead_lettered_at is not None
    running = sleep_with_progress.delay(30, 60)
    running_job = wait_for_job(running.id, statuses=[JobStatus.STARTED], timeout=20)

    # No ORM calls inside the browser block: playwright's greenlet has a context of its
    # own, where Django would use (and keep) a separate database connection.
    with chromium_page(shots) as page:
        log_in(page, live_server.url, "ops", "/admin/tasklayer/job/")
        replayed = run_action(
            page, live_server.url, dead, "Replay selected dead letters", shots / "replay.png"
        )
        cancelled = run_action(
            page,
            live_server.url,
            running_job,
            "Cancel selected jobs",
            shots / "cancel.png",
        )

    assert f"Replayed {dead.task_id} as new job" in replayed
    dead.refresh_from_db()
    assert dead.dead_letter_resolution == DeadLetterResolution.REPLAYED
    new = Job.objects.get(retried_from=dead)
    assert new.args == ["card declined"]
    assert "cancel requested while running" in cancelled
    assert wait_for_job(running.id, timeout=10).status == JobStatus.REVOKED
    # Both actions are in the admin's history, under the operator's name.
    logged = set(LogEntry.objects.filter(user=admin).values_list("object_repr", flat=True))
    assert any(dead.task_id in text for text in logged)
    assert any(running.id in text for text in logged)


def test_actions_follow_the_operator_s_permissions(
    live_worker: WorkerProcess, live_server: Any, output_dir: Path
) -> None:
    user = get_user_model().objects.create_user("viewer", password=PASSWORD, is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="view_job"), Permission.objects.get(codename="cancel_job")
    )
    job = wait_for_job(always_fail.delay("no rights").id, timeout=40)

    with chromium_page(output_dir / "screenshots") as page:
        log_in(page, live_server.url, "viewer", f"/admin/tasklayer/job/?q={job.task_id}")
        page.locator("select[name=action]").wait_for()
        labels = page.locator("select[name=action] option").all_inner_texts()
        page.screenshot(path=str(output_dir / "screenshots" / "actions-viewer.png"))

    assert "Cancel selected jobs" in labels
    assert "Replay selected dead letters" not in labels
    assert "Retry selected jobs" not in labels
    assert "Purge selected dead letters" not in labels
