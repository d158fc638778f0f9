"""The lookups shaped for Job's partial indexes find exactly what the plain filters find.

`correlated`, `family` and `matching_id` split `column = X` into "the job X itself" and
"the other jobs", because the indexes hold only rows whose id differs from their own
task id; a mistake in that split would silently drop the root job or a child.
"""

from __future__ import annotations

import pytest
from django.db.models import Q
from django.utils import timezone

from tasks.models import Job

pytestmark = pytest.mark.django_db


def _job(task_id: str, *, root: str = "", correlation: str = "", group: str = "") -> Job:
    return Job.objects.create(
        task_id=task_id,
        name=f"demo.{task_id}",
        root_id=root or task_id,
        correlation_id=correlation or task_id,
        group_id=group,
        created_at=timezone.now(),
    )


@pytest.fixture
def workflow() -> list[Job]:
    return [
        _job("root"),  # its own root and correlation
        _job("child", root="root", correlation="root", group="g1"),
        _job("grandchild", root="root", correlation="request-7", group="g1"),
        _job("other", correlation="request-7"),
        # Its task id is another job's correlation id, but its own correlation differs.
        _job("request-7", root="other", correlation="elsewhere"),
        _job("loner"),
        # As `.delay()` writes a PENDING row in a transaction: no root yet.
        Job.objects.create(task_id="pending", correlation_id="pending", created_at=timezone.now()),
    ]


def ids(queryset: object) -> set[str]:
    return set(queryset.values_list("task_id", flat=True))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "value", ["root", "request-7", "other", "elsewhere", "loner", "pending", "none"]
)
def test_correlated_and_family_match_the_plain_filters(workflow: list[Job], value: str) -> None:
    assert ids(Job.objects.correlated(value)) == ids(Job.objects.filter(correlation_id=value))
    assert ids(Job.objects.family(value)) == ids(Job.objects.filter(root_id=value))


def test_the_split_is_not_vacuous(workflow: list[Job]) -> None:
    assert ids(Job.objects.family("root")) == {"root", "child", "grandchild"}
    assert ids(Job.objects.correlated("request-7")) == {"grandchild", "other"}


def test_no_id_is_no_workflow(workflow: list[Job]) -> None:
    """A row without a root or correlation yet belongs to no family: "" matches none."""
    assert ids(Job.objects.filter(root_id="")) == {"pending"}  # where the plain filter finds it
    assert ids(Job.objects.family("")) == set()
    assert ids(Job.objects.correlated("")) == set()
    assert ids(Job.objects.family("pending")) == set()


def test_in_group_finds_members_and_nothing_for_no_group(workflow: list[Job]) -> None:
    assert ids(Job.objects.in_group("g1")) == {"child", "grandchild"}
    assert ids(Job.objects.in_group("")) == set()


@pytest.mark.parametrize("term", ["root", "request-7", "elsewhere", "demo.loner", "none"])
def test_matching_id_is_the_or_of_the_four_columns(workflow: list[Job], term: str) -> None:
    plain = Job.objects.filter(
        Q(task_id=term) | Q(correlation_id=term) | Q(root_id=term) | Q(name=term)
    )
    assert ids(Job.objects.matching_id(term)) == ids(plain)


def test_reruns_are_found_through_their_index(workflow: list[Job]) -> None:
    original = workflow[-1]
    rerun = _job("rerun")
    rerun.retried_from = original
    rerun.save(update_fields=["retried_from"])
    assert ids(original.retries.all()) == {"rerun"}
