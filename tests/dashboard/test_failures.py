"""The failures page against known rows: groups of the window with exact counts, their
samples, and per-group actions offered only to users allowed them."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from dashboard.access import ensure_read_only_group
from tasks.models import FailureGroup, JobStatus
from tests.dashboard.test_overview import admin_client, explorer_query, finish

pytestmark = pytest.mark.django_db

TIMEOUT = (
    "Traceback (most recent call last):\n"
    '  File "/srv/app/billing/jobs.py", line 42, in charge\n'
    "    raise TimeoutError('slow <b>bold</b>')\n"
    "TimeoutError: slow <b>bold</b>\n"
)
KEYERROR = (
    "Traceback (most recent call last):\n"
    '  File "/srv/app/mail/jobs.py", line 7, in send\n'
    "    raise KeyError('to')\n"
    "KeyError: 'to'\n"
)


@pytest.fixture
def groups() -> dict[str, str]:
    """billing.charge timed out 3 times in the last hour (on two queues) and twice 3
    days ago; mail.send raised KeyError once 5 hours ago. Name -> fingerprint."""
    now = timezone.now()
    for i in range(3):
        queue = "high" if i else "low"
        finish(
            f"t{i}",
            JobStatus.FAILURE,
            now - timedelta(minutes=10 + i),
            queue=queue,
            error="TimeoutError: slow <b>bold</b>",
            traceback=TIMEOUT,
        )
    for i in range(2):
        finish(
            f"t-old{i}",
            JobStatus.FAILURE,
            now - timedelta(days=3),
            error="TimeoutError: slow",
            traceback=TIMEOUT,
        )
    finish(
        "k1",
        JobStatus.FAILURE,
        now - timedelta(hours=5),
        name="mail.send",
        error="KeyError: 'to'",
        traceback=KEYERROR,
    )
    return {g.name: g.fingerprint for g in FailureGroup.objects.all()}


def articles(html: str) -> list[str]:
    return re.findall(r'<article class="panel failure-group" data-fingerprint="(\w+)">', html)


def article(html: str, fingerprint: str) -> str:
    match = re.search(rf'data-fingerprint="{fingerprint}">(.*?)</article>', html, re.S)
    assert match
    return match.group(1)


def test_groups_of_the_default_day_busiest_first_with_exact_counts(groups: dict[str, str]) -> None:
    html = admin_client().get("/dashboard/failures/").content.decode()
    assert articles(html) == [groups["billing.charge"], groups["mail.send"]]
    billing = article(html, groups["billing.charge"])
    assert re.search(r"<strong data-count>3</strong>", billing)
    assert "5 in all" in billing
    assert "TimeoutError" in billing
    assert "billing/jobs.py:charge" in billing  # the frame (tasks.record.fingerprint)
    assert '<span class="mono">high</span>, <span class="mono">low</span>' in billing
    assert "<b>bold</b>" not in billing  # the error and traceback are escaped
    assert "&lt;b&gt;bold&lt;/b&gt;" in billing
    assert "<details" in billing
    assert "Sample traceback" in billing
    jobs = re.search(r'<a class="btn btn-sm" href="([^"]*)">Its jobs</a>', billing)
    assert jobs
    assert explorer_query(jobs.group(1)) == f"fingerprint:{groups['billing.charge']}"
    assert re.search(r"<strong data-count>1</strong>", article(html, groups["mail.send"]))
    assert "4 failures in 2 groups" in html


def test_the_window_narrows_and_widens_the_groups(groups: dict[str, str]) -> None:
    client = admin_client()
    hour = client.get("/dashboard/failures/?window=1h").content.decode()
    assert articles(hour) == [groups["billing.charge"]]
    month = client.get("/dashboard/failures/?window=30d").content.decode()
    assert re.search(r"<strong data-count>5</strong>", article(month, groups["billing.charge"]))
    live = client.get("/dashboard/failures/live/?window=1h").content.decode()
    assert "<html" not in live
    assert articles(live) == [groups["billing.charge"]]
    page = client.get("/dashboard/failures/?window=1h").content.decode()
    assert 'data-live-src="/dashboard/failures/live/?window=1h"' in page
    unknown = client.get("/dashboard/failures/?window=nope").content.decode()
    assert articles(unknown) == articles(client.get("/dashboard/failures/").content.decode())


def test_group_actions_post_to_the_preview_with_the_group_filter(groups: dict[str, str]) -> None:
    html = admin_client().get("/dashboard/failures/?window=7d").content.decode()
    billing = article(html, groups["billing.charge"])
    forms = re.findall(
        r'<form method="post" action="/dashboard/actions/preview/">(.*?)</form>', billing, re.S
    )
    actions = [re.search(r'name="action" value="(\w+)"', f).group(1) for f in forms]  # type: ignore[union-attr]
    assert actions == ["retry", "replay", "purge"]
    for form in forms:
        assert f'name="q" value="fingerprint:{groups["billing.charge"]}"' in form
        assert 'name="next" value="/dashboard/failures/?window=7d"' in unescape(form)
        assert "csrfmiddlewaretoken" in form


def test_a_read_only_user_sees_no_action_and_a_retrier_only_retry(groups: dict[str, str]) -> None:
    viewer = get_user_model().objects.create_user("viewer", password="pw", is_staff=True)
    viewer.groups.add(ensure_read_only_group())
    client = Client()
    client.force_login(viewer)
    html = client.get("/dashboard/failures/").content.decode()
    assert len(articles(html)) == 2
    assert "/dashboard/actions/preview/" not in html
    viewer.user_permissions.add(Permission.objects.get(codename="retry_job"))
    client.force_login(get_user_model().objects.get(pk=viewer.pk))
    html = client.get("/dashboard/failures/").content.decode()
    assert set(re.findall(r'data-action="(\w+)"', html)) == {"retry"}


def test_no_failure_says_so() -> None:
    html = admin_client().get("/dashboard/failures/?window=1h").content.decode()
    assert "Nothing failed in the last 1 hour." in html
    assert "No failures" in html


def test_a_failure_of_a_job_without_a_name_is_listed_without_a_task_link() -> None:
    finish("nameless", JobStatus.FAILURE, timezone.now(), name="")
    finish("slashed", JobStatus.FAILURE, timezone.now(), name="odd/name")
    client = admin_client()
    html = client.get("/dashboard/failures/").content.decode()
    assert len(articles(html)) == 2
    assert '<span class="mono">(no name)</span>' in html
    assert '<span class="mono">odd/name</span>' in html
    tasks = client.get("/dashboard/tasks/").content.decode()
    assert '<span class="mono">(no name)</span>' in tasks
