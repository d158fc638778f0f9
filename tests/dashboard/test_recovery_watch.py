"""The overview's notice and link against rows the layer's own recovery wrote: a
BrokerLoss row and jobs marked by tasks.runtime.broker_recovery.complete (the marking the
watcher beside every worker does after a real loss, with a real, empty Redis), not
hand-made ones. The link lists exactly the jobs it marked."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from html import unescape
from pathlib import Path

import pytest
import redis
from django.test import Client
from django.utils import timezone

from devstack.redis_server import RedisServer, free_port
from tasks.models import BrokerLoss, Job, JobStatus
from tasks.runtime import broker_recovery

pytestmark = pytest.mark.django_db


@pytest.fixture
def empty_broker(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of the test's own, empty like a broker that lost its data. Not the
    session's broker: flushing that one would be a real loss to the session worker's
    watch, which would then recover the session's jobs."""
    server = RedisServer(port=free_port(), data_dir=tmp_path / "redis", persistent=False)
    server.start()
    yield server
    server.stop()


def test_the_notice_lists_what_the_recovery_marked(
    admin_client_logged_in: Client, empty_broker: RedisServer
) -> None:
    now = timezone.now()
    sent = now - timedelta(minutes=3)
    for i, status in enumerate((JobStatus.SENT, JobStatus.RECEIVED, JobStatus.SENT)):
        Job.objects.create(
            task_id=f"lost-{i}", name="billing.charge", queue="default", status=status,
            created_at=sent - timedelta(seconds=i), sent_at=sent - timedelta(seconds=i),
        )  # fmt: skip
    Job.objects.create(
        task_id="done", name="billing.charge", queue="default", status=JobStatus.SUCCESS,
        created_at=sent, sent_at=sent, finished_at=sent + timedelta(seconds=1),
    )  # fmt: skip
    loss = BrokerLoss.objects.create(
        detected_at=now,
        broker="redis://127.0.0.1/0",
        evidence="marker missing",
        restarted_at=now - timedelta(seconds=30),
    )
    # The broker came back empty: it holds none of the jobs.
    assert redis.Redis.from_url(empty_broker.url).dbsize() == 0
    loss = broker_recovery.complete(loss, empty_broker.url)
    marked = set(Job.objects.filter(recovered_at__isnull=False).values_list("task_id", flat=True))
    assert marked == {"lost-0", "lost-1", "lost-2"}
    assert loss.republished == 3

    html = admin_client_logged_in.get("/dashboard/").content.decode()
    block = re.search(r'<p class="flash flash-warning broker-loss".*?</p>', html, re.S)
    assert block
    text = " ".join(unescape(re.sub(r"<[^>]+>", "", block.group(0))).split())
    restarted = timezone.localtime(now - timedelta(seconds=30)).strftime("%H:%M")
    assert text.startswith(f"3 jobs re-published after the broker restarted at {restarted}.")
    link = re.search(r'<a href="([^"]+)">See the re-published jobs</a>', block.group(0))
    assert link
    page = admin_client_logged_in.get(unescape(link.group(1))).content.decode()
    assert set(re.findall(r'<div class="muted mono small">([^<]+)</div>', page)) == marked

    job_page = admin_client_logged_in.get("/dashboard/jobs/lost-0/").content.decode()
    assert "Re-published by the layer" in job_page
    assert "lost its data" in job_page
