"""The dashboard's pages and live fragments as bench.scale times them on the loaded table.

Issue 21 ("Fast at scale"): every page and fragment of /dashboard/ answers in under
150 ms at p95 on 10 million jobs, among them a filter over a time range with a status
and a task name, the failure groups of the last 24 hours and the 30-day throughput
chart (the overview's). Each is a `Question`: a GET (or the bulk preview's POST) through
Django's test Client, timed like the admin's pages in bench.scale.

A page that answers 501 is a placeholder not built yet: it is reported "not built"
(FAIL) instead of ending the run, so the bench runs while the pages are being written.

Pure but for `fetch`, which takes the Client: the URLs are built from the clock, the
number of rows and the time zone the filter language reads naive times in.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import urlencode

# A generated job's task name (bench.scale.NAMES): its failures are spread over 30 days.
ONE_TASK = "shop.tasks.job_03"
# The cursor link to the next (older) page of the explorer: <a ... rel="next" href="...">.
NEXT_LINK = re.compile(r"<a\b[^>]*\brel=\"next\"[^>]*>")
HREF = re.compile(r"\bhref=\"([^\"]+)\"")
PAGE_TWO = "jobs explorer, page 2 (cursor from page 1)"
EXPLORER_FIRST_PAGE = "jobs explorer, first page (no filter)"
# Groups among the generated jobs (bench.scale): every BATCH_EVERY-th block of BATCH_SIZE
# consecutive jobs is one group, so 10M rows hold 50 batches of 10,000 members.
BATCH_SIZE = 10_000
BATCH_EVERY = 20


@dataclass(frozen=True)
class Question:
    """One page or fragment: `path` with its query string, POSTed with `form` if any."""

    label: str
    path: str
    form: Mapping[str, str] | None = field(default=None)


def spelt(moment: datetime, tz: tzinfo) -> str:
    """A moment as an operator types it in the filter language: naive, in `tz`."""
    return moment.astimezone(tz).replace(tzinfo=None).isoformat(timespec="minutes")


def explorer(query: str) -> str:
    return "/dashboard/jobs/?" + urlencode({"q": query})


def task_id_of(i: int) -> str:
    """The task id bench.scale gives generated job i."""
    return format(i, "032x")


def batch_id_of(block: int) -> str:
    """The group id bench.scale gives the generated jobs of block `block`."""
    return f"bench-batch-{block}"


def middle_batch(rows: int) -> str:
    """A generated batch near the middle of the table (block 0 when there are few rows)."""
    blocks = max(rows // BATCH_SIZE, 1)
    return batch_id_of((blocks // 2) // BATCH_EVERY * BATCH_EVERY)


def questions(now: datetime, rows: int, tz: tzinfo) -> list[Question]:
    """Every page and live fragment of the dashboard, in the order they are timed; the
    explorer's page 2 comes later (`page_two`), from page 1's link."""
    middle = task_id_of(rows // 2)
    batch = f"/dashboard/batches/{middle_batch(rows)}/"
    time_range = (
        f"status:failure task:{ONE_TASK} "
        f"after:{spelt(now - timedelta(hours=6), tz)} before:{spelt(now - timedelta(hours=1), tz)}"
    )
    return [
        Question("dashboard overview (with the 30-day throughput chart)", "/dashboard/"),
        Question("dashboard overview, live fragment", "/dashboard/live/"),
        Question("dashboard overview, charts fragment", "/dashboard/live/charts/"),
        Question(EXPLORER_FIRST_PAGE, "/dashboard/jobs/"),
        Question("jobs explorer, status + task + 5 h time range", explorer(time_range)),
        Question(
            'jobs explorer, error:"bad input" in the last hour',
            explorer('error:"bad input" after:1h'),
        ),
        Question("job page", f"/dashboard/jobs/{middle}/"),
        Question("job page, live fragment", f"/dashboard/jobs/{middle}/live/"),
        Question("failure groups, last 24 h", "/dashboard/failures/"),
        Question("failure groups, live fragment", "/dashboard/failures/live/"),
        Question("failure groups, 30 days", "/dashboard/failures/?window=30d"),
        Question("running now", "/dashboard/running/"),
        Question("running now, live fragment", "/dashboard/running/live/"),
        Question("tasks, 24 h", "/dashboard/tasks/"),
        Question("tasks, 30 days", "/dashboard/tasks/?window=30d"),
        Question("one task's page", f"/dashboard/tasks/{ONE_TASK}/"),
        Question("activity", "/dashboard/activity/"),
        Question("queues", "/dashboard/queues/"),
        Question("queues, live fragment", "/dashboard/queues/live/"),
        Question("workers", "/dashboard/workers/"),
        Question("workers, live fragment", "/dashboard/workers/live/"),
        Question("schedules", "/dashboard/schedules/"),
        Question("schedules, live fragment", "/dashboard/schedules/live/"),
        Question("batches, newest", "/dashboard/batches/"),
        Question("batches, live fragment", "/dashboard/batches/live/"),
        Question("one batch of 10,000", batch),
        Question("one batch, live fragment", batch + "live/"),
        Question("one batch, progress chart", batch + "live/?part=chart"),
        Question(
            "bulk preview: retry the failures of the last hour",
            "/dashboard/actions/preview/",
            {"action": "retry", "q": "status:failure after:1h", "next": "/dashboard/jobs/"},
        ),
    ]


def next_page(body: str) -> str | None:
    """The path of the explorer's next (older) page in a page's HTML, if it has one."""
    tag = NEXT_LINK.search(body)
    href = HREF.search(tag.group(0)) if tag else None
    return html.unescape(href.group(1)) if href else None


def fetch(client: Any, question: Question) -> Any:
    """One request of `question` through the test Client (https, as production serves)."""
    if question.form is not None:
        return client.post(question.path, dict(question.form), secure=True)
    return client.get(question.path, secure=True)


def outcome(status: int) -> str | None:
    """None for a page that answered; else what the table says instead of its time."""
    if status == 200:
        return None
    if status == 501:
        return "not built"
    return f"answered {status}"


def timed(
    question: Question, client: Any, repeat: int, clock: Callable[[], float]
) -> dict[str, Any]:
    """`question` fetched once to warm up, then `repeat` times timed: the samples in ms,
    or what went wrong instead (no samples)."""
    try:
        first = fetch(client, question)
    except Exception as exc:  # a view that raised: report it, time the others
        return {"question": question.label, "path": question.path, "failed": repr(exc)[:200]}
    problem = outcome(first.status_code)
    if problem:
        return {"question": question.label, "path": question.path, "failed": problem}
    samples = []
    for _ in range(repeat):
        started = clock()
        response = fetch(client, question)
        samples.append((clock() - started) * 1000)
        if response.status_code != 200:
            return {
                "question": question.label,
                "path": question.path,
                "failed": f"answered {response.status_code} after {len(samples)} samples",
            }
    return {
        "question": question.label,
        "path": question.path,
        "samples": samples,
        "body": first.content.decode(errors="replace"),
    }
