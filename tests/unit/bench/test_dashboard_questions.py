"""bench.dashboard_questions: every dashboard page and fragment is timed, a page not built
yet is reported instead of ending the run, page 2 follows page 1's cursor link.

Pure: URLs resolved against the URLconf, a fake test Client.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from django.urls import resolve

from bench import dashboard_questions, report, scale, scale_report
from bench.dashboard_questions import Question

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
# Not timed: the CSV exports and autocomplete are not pages, a chart bucket's link is a
# redirect to an explorer page (timed), the actions (and their confirmations) change
# queues, workers, schedules and jobs.
NOT_PAGES = {
    "jobs-export",
    "jobs-suggest",
    "jobs-bucket",
    "action-apply",
    "queue-pause",
    "queue-resume",
    "queue-purge",
    "worker-pool",
    "worker-shutdown",
    "schedule-run",
    "schedule-enabled",
    "batch-export",
    "batch-cancel",
}


def test_every_page_and_live_fragment_of_the_dashboard_is_a_question() -> None:
    from dashboard import urls

    asked = {
        resolve(q.path.split("?")[0], urlconf="project.urls").url_name
        for q in dashboard_questions.questions(NOW, 1000, UTC)
    }
    assert asked == {pattern.name for pattern in urls.urlpatterns} - NOT_PAGES


def test_the_time_range_filter_names_a_status_a_task_and_two_naive_times() -> None:
    tz = timezone(timedelta(hours=1))
    by_label = {q.label: q for q in dashboard_questions.questions(NOW, 1000, tz)}
    path = by_label["jobs explorer, status + task + 5 h time range"].path
    assert path == (
        "/dashboard/jobs/?q=status%3Afailure+task%3Ashop.tasks.job_03"
        "+after%3A2026-12-06T07%3A00+before%3A2026-12-06T12%3A00"
    )


def test_the_job_page_is_a_generated_job_in_the_middle_of_the_table() -> None:
    by_label = {q.label: q for q in dashboard_questions.questions(NOW, 1000, UTC)}
    assert by_label["job page"].path == f"/dashboard/jobs/{500:032x}/"


def test_the_bulk_preview_is_posted_with_a_filter() -> None:
    posted = [q for q in dashboard_questions.questions(NOW, 1000, UTC) if q.form]
    assert [q.form for q in posted] == [
        {"action": "retry", "q": "status:failure after:1h", "next": "/dashboard/jobs/"}
    ]


@pytest.mark.parametrize(
    "body",
    [
        '<a class="btn" rel="next" href="/dashboard/jobs/?q=&amp;after=17_5">Older</a>',
        '<a href="/dashboard/jobs/?q=&amp;after=17_5" class="btn" rel="next">Older</a>',
    ],
)
def test_page_two_is_the_next_link_of_page_one(body: str) -> None:
    assert dashboard_questions.next_page(body) == "/dashboard/jobs/?q=&after=17_5"


def test_a_page_without_a_next_link_has_no_page_two() -> None:
    assert dashboard_questions.next_page('<a rel="prev" href="/x">Newer</a>') is None


@dataclass
class Response:
    status_code: int
    content: bytes = b"<html></html>"


class FakeClient:
    def __init__(self, statuses: Iterator[int] | None = None, error: Exception | None = None):
        self.statuses = statuses or itertools.repeat(200)
        self.error = error
        self.calls: list[tuple[str, str, Any]] = []

    def get(self, path: str, secure: bool) -> Response:
        return self.answer("GET", path, None, secure)

    def post(self, path: str, data: dict[str, str], secure: bool) -> Response:
        return self.answer("POST", path, data, secure)

    def answer(self, method: str, path: str, data: Any, secure: bool) -> Response:
        assert secure, "production settings redirect plain http"
        self.calls.append((method, path, data))
        if self.error:
            raise self.error
        return Response(next(self.statuses))


def ticking() -> Any:
    return itertools.count(0.0, 0.01).__next__  # every reading 10 ms after the last


def test_a_page_is_fetched_once_to_warm_up_then_timed_repeat_times() -> None:
    client = FakeClient()
    found = dashboard_questions.timed(Question("x", "/dashboard/"), client, 5, ticking())
    assert len(client.calls) == 6
    assert found["samples"] == pytest.approx([10.0] * 5)
    line = scale.verdict(found)
    assert line["pass"] is True
    assert line["p95_ms"] == pytest.approx(10.0)


def test_a_placeholder_page_is_reported_not_built_and_fails() -> None:
    client = FakeClient(iter([501]))
    found = dashboard_questions.timed(Question("x", "/dashboard/"), client, 5, ticking())
    assert found["failed"] == "not built"
    assert len(client.calls) == 1
    assert scale.verdict(found) == {
        "question": "x",
        "path": "/dashboard/",
        "failed": "not built",
        "pass": False,
    }


def test_a_page_that_raises_or_errs_midway_is_reported_with_what_happened() -> None:
    raised = dashboard_questions.timed(
        Question("x", "/"), FakeClient(error=ValueError("boom")), 5, ticking()
    )
    assert raised["failed"] == "ValueError('boom')"
    midway = dashboard_questions.timed(
        Question("x", "/"), FakeClient(iter([200, 200, 500])), 5, ticking()
    )
    assert midway["failed"] == "answered 500 after 2 samples"


def test_a_failed_question_is_a_fail_line_of_the_targets_table() -> None:
    entry = {
        "rows": 1000,
        "runs": [
            {
                "round": 1,
                "side": side,
                "table": table,
                "enqueue_per_s": 100.0,
                "drain_per_s": 50.0,
                "lag_p95_ms": 100.0,
            }
            for side in ("layer", "layer-atomic")
            for table in scale_report.TABLES
        ],
        "queries": [{"question": "tasks, 24 h", "failed": "not built", "pass": False}],
    }
    lines = {line["figure"]: line for line in scale_report.verdicts(scale_report.summarize(entry))}
    line = lines["tasks, 24 h, p95, 1,000 rows"]
    assert line["pass"] is False
    assert line["target"] == "< 150 (not built)"
    last = report.format_targets([line]).splitlines()[-1]
    assert [cell.strip() for cell in last.split("|")[1:-1]] == [
        "tasks, 24 h, p95, 1,000 rows",
        "none",
        "< 150 (not built)",
        "FAIL",
    ]


def test_the_timed_batch_is_one_the_load_makes() -> None:
    # Blocks 0, 20, 40, ... are groups; 10M rows make blocks 0..999.
    assert dashboard_questions.middle_batch(10_000_000) == "bench-batch-500"
    assert dashboard_questions.middle_batch(1000) == "bench-batch-0"
