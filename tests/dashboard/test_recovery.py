"""What the dashboard shows after the broker lost its data (issue 23): the overview's
notice with the count, the local time and a link listing exactly the re-published jobs;
the job page's timeline line and summary; /metrics' counters, parsed with Prometheus'
own parser, equal to the BrokerLoss rows; the explorer's recovered: key.

BrokerLoss rows and recovered jobs are written directly with the ORM (as the watcher and
tasks.models' JobQuerySet would leave them)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import pytest
from django.db.models import Max, Sum
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from dashboard.read.broker_losses import loss_notice
from dashboard.search import suggestions
from dashboard.search.errors import FilterError
from dashboard.search.jobs import matching_jobs
from dashboard.search.language import JobFilter, parse
from dashboard.search.times import TimeBound
from tasks.models import BrokerLoss, Job, JobStatus

pytestmark = pytest.mark.django_db

TOKEN = "scrape-token-0123456789abcdef"
BERLIN = ZoneInfo("Europe/Berlin")
BECAUSE = "the broker lost its data (redis run_id changed)"


def loss(detected_at: datetime, **fields: Any) -> BrokerLoss:
    fields.setdefault("broker", "redis://127.0.0.1:6379/0")
    fields.setdefault("evidence", "run_id changed from a1 to b2; marker key gone")
    fields.setdefault("finished_at", detected_at + timedelta(seconds=2))
    return BrokerLoss.objects.create(detected_at=detected_at, **fields)


def job(task_id: str, created_at: datetime, **fields: Any) -> Job:
    fields.setdefault("name", "billing.charge")
    fields.setdefault("queue", "default")
    fields.setdefault("status", JobStatus.SENT)
    return Job.objects.create(task_id=task_id, created_at=created_at, **fields)


def recovered(task_id: str, at: datetime, times: int = 1, **fields: Any) -> Job:
    return job(
        task_id,
        at - timedelta(minutes=3),
        recovered_at=at,
        recoveries=times,
        recovered_because=BECAUSE,
        **fields,
    )


def listed(client: Client, url: str) -> list[str]:
    """The task ids of the explorer page at `url`."""
    response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return re.findall(r'<div class="muted mono small">([^<]+)</div>', response.content.decode())


def notice_of(html: str) -> tuple[str, str]:
    """The notice's text (one line) and its link."""
    found = re.search(r'<p class="flash flash-warning broker-loss".*?</p>', html, re.S)
    assert found, "no broker-loss notice"
    block = found.group(0)
    link = re.search(r'<a href="([^"]+)">See the re-published jobs</a>', block)
    assert link
    text = " ".join(unescape(re.sub(r"<[^>]+>", "", block)).split())
    return text, unescape(link.group(1))


@pytest.fixture
def scene() -> dict[str, Any]:
    """Two losses in the last 24 hours (the latest with a restart time and jobs the
    broker still held), one older; the jobs each re-published, and bystanders."""
    now = timezone.now().replace(microsecond=0)
    latest_at = now - timedelta(minutes=30, seconds=17, microseconds=250_000)
    earlier_at = now - timedelta(hours=5)
    old_at = now - timedelta(hours=30)
    latest = loss(latest_at, restarted_at=latest_at - timedelta(seconds=40), republished=3)
    latest.still_held = 2
    latest.save(update_fields=["still_held"])
    loss(earlier_at, republished=1)
    loss(old_at, republished=4)
    ids = [
        recovered(f"lost-{i}", latest_at + timedelta(milliseconds=400 + i), status=s).task_id
        for i, s in enumerate((JobStatus.SENT, JobStatus.SUCCESS, JobStatus.RETRY))
    ]
    recovered("lost-earlier", earlier_at + timedelta(seconds=1), status=JobStatus.SUCCESS)
    recovered("lost-old", old_at + timedelta(seconds=1), status=JobStatus.SUCCESS)
    for i in range(4):
        job(f"bystander-{i}", latest_at - timedelta(minutes=i), status=JobStatus.SUCCESS)
    job("after-the-loss", now - timedelta(minutes=1), status=JobStatus.SENT)
    return {"now": now, "latest": latest, "ids": ids}


@override_settings(TIME_ZONE="Europe/Berlin")
def test_the_overview_says_how_many_jobs_were_republished_and_links_exactly_them(
    admin_client_logged_in: Client, scene: dict[str, Any]
) -> None:
    latest: BrokerLoss = scene["latest"]
    for url in ("/dashboard/", "/dashboard/live/"):
        response = admin_client_logged_in.get(url)
        assert response.status_code == 200
        text, link = notice_of(response.content.decode())
        # The restart time, in the page's time zone (Berlin, not the UTC of the rows).
        assert latest.restarted_at is not None
        restarted = latest.restarted_at.astimezone(BERLIN).strftime("%H:%M")
        assert restarted != latest.restarted_at.astimezone(UTC).strftime("%H:%M")
        assert text.startswith(f"3 jobs re-published after the broker restarted at {restarted}.")
        assert "The broker still held 2 unfinished jobs: left to it, not published twice." in text
        assert "1 earlier loss in the last 24 h (4 jobs re-published in all)." in text
        assert "redis://127.0.0.1:6379/0" in text

        # The link: the explorer listing exactly the latest loss's jobs, newest first.
        assert urlparse(link).path == "/dashboard/jobs/"
        # Bounded by creation time (the explorer's keyset starts at the loss) and by the
        # time the layer re-published them.
        q = parse(parse_qs(urlparse(link).query)["q"][0])
        found = latest.detected_at.replace(microsecond=0)
        assert q.before is not None
        assert isinstance(q.recovered, TimeBound)
        assert (q.recovered.moment, q.before.moment) == (found, found + timedelta(seconds=1))
        assert q == JobFilter(before=q.before, recovered=q.recovered)
        assert listed(admin_client_logged_in, link) == list(reversed(scene["ids"]))


@override_settings(TIME_ZONE="Asia/Kolkata")
def test_a_loss_being_handled_without_a_restart_time_says_when_it_was_found(
    admin_client_logged_in: Client,
) -> None:
    found_at = timezone.now() - timedelta(minutes=2)
    loss(found_at, republished=1, finished_at=None)
    recovered("only-one", found_at + timedelta(seconds=1))
    text, link = notice_of(admin_client_logged_in.get("/dashboard/").content.decode())
    local = found_at.astimezone(ZoneInfo("Asia/Kolkata")).strftime("%H:%M")
    assert text.startswith(f"1 job re-published so far after the broker lost its data at {local}.")
    assert "still held" not in text
    assert "earlier" not in text
    assert listed(admin_client_logged_in, link) == ["only-one"]


def test_no_notice_without_a_loss_in_the_last_24_hours(admin_client_logged_in: Client) -> None:
    loss(timezone.now() - timedelta(hours=24, minutes=1), republished=5)
    assert loss_notice(timezone.now()) is None
    html = admin_client_logged_in.get("/dashboard/").content.decode()
    assert "broker-loss" not in html
    assert "re-published" not in html


def test_the_job_page_shows_the_republish_in_its_timeline_and_state(
    admin_client_logged_in: Client,
) -> None:
    at = timezone.now() - timedelta(minutes=5)
    recovered("twice-lost", at, times=2, status=JobStatus.SENT, sent_at=at - timedelta(minutes=2))
    job("never-lost", at - timedelta(minutes=1))

    html = admin_client_logged_in.get("/dashboard/jobs/twice-lost/").content.decode()
    timeline = re.search(r'<ol class="timeline job-timeline">(.*?)</ol>', html, re.S)
    assert timeline
    lines = [
        " ".join(unescape(re.sub(r"<[^>]+>", " ", li)).split())
        for li in re.findall(r"<li[^>]*>(.*?)</li>", timeline.group(1), re.S)
    ]
    assert [line.split(" ")[0] for line in lines] == ["Created", "Sent", "Re-published"]
    assert lines[-1].startswith("Re-published by the layer")
    assert lines[-1].endswith(f"{BECAUSE} (the 2nd time)")
    assert at.strftime("%H:%M:%S") in lines[-1]
    state = re.search(r'<dl class="kv job-state">(.*?)</dl>', html, re.S)
    assert state
    state_text = " ".join(unescape(re.sub(r"<[^>]+>", " ", state.group(1))).split())
    assert "re-published by the layer \N{MULTIPLICATION SIGN}2" in state_text
    assert "Recovered 2 times, last " in state_text
    assert BECAUSE in state_text
    # The live fragment (refreshed while the job is unfinished) shows the same.
    live = admin_client_logged_in.get("/dashboard/jobs/twice-lost/live/").content.decode()
    assert "Recovered" in live

    other = admin_client_logged_in.get("/dashboard/jobs/never-lost/").content.decode()
    assert "Re-published" not in other
    assert "Recovered" not in other


@override_settings(TASKS_METRICS_TOKEN=TOKEN)
def test_metrics_count_the_losses_and_the_republished_jobs(scene: dict[str, Any]) -> None:
    def scrape() -> dict[str, float]:
        response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200
        return {
            sample.name: sample.value
            for family in text_string_to_metric_families(response.content.decode())
            for sample in family.samples
            if sample.name.startswith(("tasklayer_broker_", "tasklayer_jobs_recovered"))
        } | {
            f"up:{sample.labels['part']}": sample.value
            for family in text_string_to_metric_families(response.content.decode())
            for sample in family.samples
            if sample.name == "tasklayer_collector_up"
        }

    rows = BrokerLoss.objects.aggregate(jobs=Sum("republished"), last=Max("detected_at"))
    found = scrape()
    assert found["up:recovery"] == 1
    assert found["tasklayer_broker_losses_total"] == BrokerLoss.objects.count() == 3
    assert found["tasklayer_jobs_recovered_total"] == rows["jobs"] == 8
    assert found["tasklayer_broker_last_loss_timestamp_seconds"] == pytest.approx(
        rows["last"].timestamp(), abs=1e-3
    )
    # A new loss: both counters go up by its numbers.
    loss(timezone.now(), republished=7)
    again = scrape()
    assert again["tasklayer_broker_losses_total"] == 4
    assert again["tasklayer_jobs_recovered_total"] == 15


@override_settings(TASKS_METRICS_TOKEN=TOKEN)
def test_metrics_before_any_loss_count_zero() -> None:
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    samples = {
        s.name: s.value
        for f in text_string_to_metric_families(response.content.decode())
        for s in f.samples
    }
    assert samples["tasklayer_broker_losses_total"] == 0
    assert samples["tasklayer_jobs_recovered_total"] == 0
    assert "tasklayer_broker_last_loss_timestamp_seconds" not in samples


# --- the explorer's recovered: key ---------------------------------------------------------

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("query", "expected", "printed"),
    [
        ("recovered:yes", True, "recovered:yes"),
        ("recovered:TRUE", True, "recovered:yes"),
        ("recovered:no", False, "recovered:no"),
        ("-recovered:yes", False, "recovered:no"),
        ("-recovered:no", True, "recovered:yes"),
        ("recovered:2h", TimeBound(NOW - timedelta(hours=2), "2h"), "recovered:2h"),
        (
            "recovered:2026-12-06T10:42",
            TimeBound(datetime(2026, 12, 6, 10, 42, tzinfo=UTC), "2026-12-06T10:42"),
            "recovered:2026-12-06T10:42",
        ),
    ],
)
def test_the_recovered_key_parses_and_prints_back(query: str, expected: Any, printed: str) -> None:
    parsed = parse(query, now=NOW, tz=UTC)
    assert parsed.recovered == expected
    assert parsed.to_query() == printed
    assert parse(parsed.to_query(), now=NOW, tz=UTC) == parsed


def test_the_recovered_key_among_others_and_through_with_term() -> None:
    parsed = parse("task:billing.* recovered:yes after:1d dead:no", now=NOW, tz=UTC)
    assert parsed.to_query() == "task:billing.* after:1d dead:no recovered:yes"
    at = datetime(2026, 12, 6, 10, 42, 17, tzinfo=UTC)
    with_time = JobFilter().with_term("recovered", at, now=NOW)
    assert with_time.to_query() == "recovered:2026-12-06T10:42:17"
    assert with_time.with_term("recovered", False).to_query() == "recovered:no"
    assert with_time.without("recovered") == JobFilter()
    assert replace(with_time, recovered=None) == JobFilter()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("recovered:maybe", "recovered: takes yes, no or a time"),
        ("-recovered:2h", "-recovered: cannot be negated with a time; use recovered:no"),
        ("recovered:yes recovered:no", "recovered: is given twice"),
        ("recovered:yes,no", "recovered: takes one value"),
        ("recovered:", "recovered: needs a value (recovered:yes or recovered:2026-12-06T10:42)"),
        ("recoverd:yes", 'did you mean "recovered"'),
    ],
)
def test_the_recovered_key_refuses_what_it_cannot_mean(query: str, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse(query, now=NOW, tz=UTC)
    assert message in str(caught.value)


def test_the_search_box_suggests_the_recovered_key_and_its_values() -> None:
    assert "recovered:" in suggestions.complete("reco")
    assert suggestions.complete("recovered:")[:2] == ["recovered:yes", "recovered:no"]
    assert suggestions.complete("-recovered:n") == ["-recovered:no"]


def test_the_recovered_key_finds_exactly_the_recovered_jobs() -> None:
    def found(query: str) -> list[str]:
        return [j.task_id for j in matching_jobs(parse(query, now=NOW, tz=UTC))]

    recovered("r-old", NOW - timedelta(hours=3))
    recovered("r-new", NOW - timedelta(minutes=10))
    job("plain-1", NOW - timedelta(minutes=30))
    job("plain-2", NOW - timedelta(minutes=1))
    assert found("recovered:yes") == ["r-new", "r-old"]
    assert found("recovered:no") == ["plain-2", "plain-1"]
    assert found("-recovered:yes") == ["plain-2", "plain-1"]
    assert found("recovered:1h") == ["r-new"]
    # Bounded by the creation time, as the explorer's other keys are.
    assert found("recovered:yes after:1h") == ["r-new"]
    assert found("recovered:yes before:1h") == ["r-old"]
