"""The job admin answers with indexed queries: exact search, configured queues, capped counts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from dashboard.pagination import CappedCountPaginator
from tasks.models import Job, JobStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def jobs() -> list[Job]:
    now = timezone.now()
    return [
        Job.objects.create(
            task_id=f"task-{i}",
            name="shop.tasks.invoice" if i % 2 else "shop.tasks.mail",
            queue="high" if i % 3 == 0 else "default",
            status=JobStatus.FAILURE if i == 4 else JobStatus.SUCCESS,
            correlation_id="req-42" if i < 2 else f"req-{i}",
            root_id=f"task-{i}",
            created_at=now - timedelta(minutes=i),
        )
        for i in range(6)
    ]


def listed_ids(response: object) -> set[str]:
    return {job.task_id for job in response.context["cl"].result_list}  # type: ignore[attr-defined]


def test_search_by_task_id_finds_exactly_that_job(admin_client: Client, jobs: list[Job]) -> None:
    response = admin_client.get("/admin/tasklayer/job/", {"q": "task-3"})
    assert response.status_code == 200
    assert listed_ids(response) == {"task-3"}


def test_search_by_correlation_id_finds_the_request_s_jobs(
    admin_client: Client, jobs: list[Job]
) -> None:
    assert listed_ids(admin_client.get("/admin/tasklayer/job/", {"q": "req-42"})) == {
        "task-0",
        "task-1",
    }


def test_search_by_exact_task_name(admin_client: Client, jobs: list[Job]) -> None:
    response = admin_client.get("/admin/tasklayer/job/", {"q": "shop.tasks.invoice"})
    assert listed_ids(response) == {"task-1", "task-3", "task-5"}
    assert listed_ids(admin_client.get("/admin/tasklayer/job/", {"q": "invoice"})) == set()


def test_filters_by_status_and_by_configured_queue(admin_client: Client, jobs: list[Job]) -> None:
    assert listed_ids(admin_client.get("/admin/tasklayer/job/", {"status__exact": "FAILURE"})) == {
        "task-4"
    }
    response = admin_client.get("/admin/tasklayer/job/", {"queue": "high"})
    assert listed_ids(response) == {"task-0", "task-3"}
    assert b">low</a>" in response.content  # the configured queues are offered


def test_the_paginator_counts_no_further_than_its_cap(
    jobs: list[Job], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(CappedCountPaginator, "CAP", 3)
    paginator = CappedCountPaginator(Job.objects.all(), per_page=2)
    assert paginator.count == 4  # CAP + 1: "more than the cap"
    assert CappedCountPaginator(Job.objects.filter(queue="high"), per_page=2).count == 2


def test_jobs_cannot_be_added_changed_or_deleted_from_the_admin(
    admin_client: Client, jobs: list[Job]
) -> None:
    job = jobs[0]
    assert admin_client.get("/admin/tasklayer/job/add/").status_code == 403
    assert admin_client.post(f"/admin/tasklayer/job/{job.pk}/delete/").status_code == 403
    page = admin_client.get(f"/admin/tasklayer/job/{job.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content


def test_the_job_admin_requires_staff(client: Client, jobs: list[Job]) -> None:
    response = client.get("/admin/tasklayer/job/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
