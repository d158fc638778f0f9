"""The overview, failures and tasks pages in a real browser with a real worker: the
charts draw the worker's jobs, the always_fail group appears with its count (its opened
traceback survives a live refresh) and "replay this group" previews its count and
replays them, the task pages draw their histogram.
Screenshots of each page at both sizes, light and dark."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from demo.tasks import add, always_fail
from tasks.models import FailureGroup, Job, JobStatus
from tests.support.browser import chromium_page
from tests.support.jobs import wait_for_jobs
from tests.support.worker import WorkerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

PASSWORD = "s3cret-pass"
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
CHART_TOTAL = """canvas => {
    const chart = Chart.getChart(canvas);
    if (!chart) return null;
    return chart.data.datasets.reduce((sum, ds) => sum + ds.data.reduce((a, b) => a + b, 0), 0);
}"""

# Where the latest minute with failures is drawn on the per-minute chart (page pixels).
LATEST_FAILED_POINT = """() => {
    const canvas = document.querySelector('canvas[data-chart="chart-per-minute"]');
    const chart = Chart.getChart(canvas);
    const failed = chart.data.datasets[1].data;
    let i = failed.length - 1;
    while (i > 0 && !failed[i]) i--;
    const point = chart.getDatasetMeta(1).data[i];
    const box = canvas.getBoundingClientRect();
    // The latest minute is drawn on the canvas's right edge: click just inside it.
    return {x: Math.min(box.left + point.x, box.right - 3), y: box.top + point.y};
}"""

# Resolves after the live refresh's next swap has settled (charts are drawn by then).
NEXT_REFRESH = (
    "() => new Promise(done => document.addEventListener("
    "'htmx:afterSettle', () => done(true), {once: true}))"
)


def shoot(page: Any, directory: Path, name: str) -> None:
    """The page at both sizes, light and dark; back to light at desktop size after."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for size, (width, height) in SIZES.items():
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(150)  # charts resize on the next frame
            page.screenshot(path=str(directory / f"{name}-{size}-{scheme}.png"), full_page=True)
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 1280, "height": 800})


def chart_total(page: Any, chart_id: str) -> float:
    canvas = page.locator(f"canvas[data-chart='{chart_id}']")
    canvas.wait_for()
    page.wait_for_function(
        "id => { const c = document.querySelector(`canvas[data-chart='${id}']`);"
        " return c !== null && Chart.getChart(c) !== undefined; }",
        arg=chart_id,
    )
    total = canvas.evaluate(CHART_TOTAL)
    assert total is not None, f"no Chart on {chart_id}"
    return float(total)


def test_overview_failures_and_tasks_pages_draw_the_workers_jobs(
    live_worker: WorkerProcess, live_server: Any, output_dir: Path
) -> None:
    get_user_model().objects.create_superuser("ops", "ops@example.com", PASSWORD)
    shots = output_dir / "screenshots" / "dashboard"
    ids = [add.delay(i, i).id for i in range(6)]
    ids += [always_fail.delay(f"failure {i}").id for i in range(3)]
    jobs = wait_for_jobs(ids, timeout=90)
    assert [j.status for j in jobs] == [JobStatus.SUCCESS] * 6 + [JobStatus.FAILURE] * 3
    group = FailureGroup.objects.get(name="tasks.demo.always_fail")
    failed = Job.objects.in_failure_group(group.fingerprint).count()
    assert failed >= 3
    parked = Job.objects.in_failure_group(group.fingerprint).parked_dead_letters().count()
    assert parked >= 3  # always_fail ends as a dead letter

    # No ORM calls inside the browser block (playwright's greenlet would get a
    # connection of its own): everything below goes through the pages.
    with chromium_page(shots) as page:
        page.set_viewport_size({"width": 1280, "height": 800})
        page.goto(f"{live_server.url}/admin/login/?next=/dashboard/")
        page.fill("#id_username", "ops")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.locator(".cards").wait_for()
        assert chart_total(page, "chart-per-minute") >= 9
        assert chart_total(page, "chart-per-hour") >= 9
        failed_card = page.locator("[data-card='failed'] .value").inner_text()
        assert int(failed_card) >= 3
        shoot(page, shots, "overview")
        # The numbers refresh at the chosen interval; the charts, once a minute, are
        # redrawn after their own swap (fetched here at once rather than in a minute).
        page.locator("[data-refresh]").wait_for(state="visible")
        page.select_option("[data-refresh-control]", "2")
        page.evaluate(NEXT_REFRESH)
        assert chart_total(page, "chart-per-minute") >= 9
        page.evaluate(
            "() => htmx.ajax('GET', '/dashboard/live/charts/', "
            "{target: '.overview-charts', swap: 'innerHTML'})"
        )
        page.wait_for_function(
            "() => Chart.getChart(document.querySelector("
            "'canvas[data-chart=\"chart-per-minute\"]')) !== undefined"
        )
        assert chart_total(page, "chart-per-minute") >= 9
        # A click on the latest minute with failures opens its jobs in the explorer.
        page.select_option("[data-refresh-control]", "0")
        canvas = page.locator('canvas[data-chart="chart-per-minute"]')
        canvas.scroll_into_view_if_needed()
        point = page.evaluate(LATEST_FAILED_POINT)
        page.mouse.click(point["x"], point["y"])
        page.wait_for_url("**/dashboard/jobs/?q=*")
        # The minutes are under a pixel apart: the click opens that minute or its
        # neighbour (which bucket gets which filter: test_overview.py).
        opened = urllib.parse.unquote_plus(page.url)
        assert re.search(r"q=status:\S+ after:\S+ before:\S+$", opened), opened

        page.goto(f"{live_server.url}/dashboard/failures/")
        article = page.locator(f"article[data-fingerprint='{group.fingerprint}']")
        article.wait_for()
        assert article.locator("[data-count]").inner_text() == str(failed)
        assert "DemoTransientError" in article.inner_text()
        # An opened traceback stays open across a live refresh (hx-preserve).
        page.select_option("[data-refresh-control]", "2")  # it was left off above
        article.locator("summary").click()
        page.evaluate(NEXT_REFRESH)
        assert article.locator("details").get_attribute("open") is not None
        assert article.locator("button[data-action='retry']").count() == 1
        shoot(page, shots, "failures")
        # "Replay this group": the preview counts its dead letters, then replays them.
        article.locator("button[data-action='replay']").click()
        touched = page.locator(".preview-touched .value")
        touched.wait_for()
        assert touched.inner_text() == str(parked)
        page.locator(".confirm-form button[type=submit]").click()
        page.wait_for_url("**/dashboard/failures/**")
        assert f"{parked} done" in page.locator(".flash").first.inner_text()

        page.goto(f"{live_server.url}/dashboard/tasks/")
        row = page.locator("tr[data-task='tasks.demo.add']")
        row.wait_for()
        assert row.locator("[data-col='count']").inner_text() == "6"
        shoot(page, shots, "tasks")

        row.locator("a.mono").click()
        page.wait_for_url("**/dashboard/tasks/tasks.demo.add/**")
        assert chart_total(page, "chart-run-histogram") == 6
        assert chart_total(page, "chart-task-throughput") == 6
        shoot(page, shots, "task")
    replays = Job.objects.filter(retried_from__fingerprint=group.fingerprint)
    assert replays.count() == parked
