"""The job's relatives: root, parent, children, group and reruns.

Its own module because it is where the page could grow with the table: each relation is
read by an indexed key and cut at a bound (parent, root and "retried from" by their
keys, children inside the family's partial index `job_root_other`, reruns by
`job_retried_from`, the group's size by `job_group_member` as a capped count).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q

from dashboard.job_page.summary import REF_FIELDS, JobRef, ref_of
from tasks.models import IS_A_RERUN, Job
from tasks.operations import Tally, bounded_count

CHILDREN_SHOWN = 50
RERUNS_SHOWN = 20
#: A group's size is counted up to this, then shown as "more than".
GROUP_COUNT_CAP = 10_000


@dataclass(frozen=True, slots=True)
class Family:
    root: JobRef | None
    parent: JobRef | None
    children: tuple[JobRef, ...]
    more_children: bool
    group_id: str
    group_size: Tally | None
    retried_from: JobRef | None
    reruns: tuple[JobRef, ...]
    more_reruns: bool

    @property
    def parent_is_root(self) -> bool:
        """The parent is the workflow's first job (a chain's second link): one line."""
        return self.parent is not None and self.root is not None and self.parent == self.root

    @property
    def empty(self) -> bool:
        return not (
            self.root
            or self.parent
            or self.children
            or self.group_id
            or self.retried_from
            or self.reruns
        )


def family_of(job: Job) -> Family:
    """Parent, root, children, group and reruns, each by an indexed key, each bounded."""
    root_id = job.root_id if job.root_id and job.root_id != job.task_id else ""
    parent_id = job.parent_id if job.parent_id != job.task_id else ""
    keyed = Q(task_id__in=[key for key in (root_id, parent_id) if key])
    if job.retried_from_id is not None:
        keyed |= Q(pk=job.retried_from_id)
    related = (
        {row.task_id: row for row in Job.objects.filter(keyed).order_by().only("id", *REF_FIELDS)}
        if root_id or parent_id or job.retried_from_id is not None
        else {}
    )
    retried_from = next(
        (ref_of(row) for row in related.values() if row.pk == job.retried_from_id), None
    )

    # Children carry this job's root (or this job's id when it is the root): searched
    # inside the family's partial index; no ORDER BY, so the scan stops at the bound,
    # and the few found are sorted here.
    children_rows = list(
        Job.objects.family(job.root_id or job.task_id)
        .filter(parent_id=job.task_id)
        .exclude(task_id=job.task_id)
        .order_by()
        .only(*REF_FIELDS)[: CHILDREN_SHOWN + 1]
    )
    children = sorted(children_rows[:CHILDREN_SHOWN], key=lambda row: row.created_at)

    rerun_rows = list(
        Job.objects.filter(IS_A_RERUN, retried_from=job.pk)
        .order_by()
        .only(*REF_FIELDS)[: RERUNS_SHOWN + 1]
    )
    reruns = sorted(rerun_rows[:RERUNS_SHOWN], key=lambda row: row.created_at)

    return Family(
        root=_known(related, root_id),
        parent=_known(related, parent_id),
        children=tuple(ref_of(row) for row in children),
        more_children=len(children_rows) > CHILDREN_SHOWN,
        group_id=job.group_id,
        group_size=(
            bounded_count(Job.objects.in_group(job.group_id), GROUP_COUNT_CAP)
            if job.group_id
            else None
        ),
        retried_from=retried_from,
        reruns=tuple(ref_of(row) for row in reruns),
        more_reruns=len(rerun_rows) > RERUNS_SHOWN,
    )


def _known(rows: dict[str, Job], task_id: str) -> JobRef | None:
    """A link to a relative by id; without a name or status when its row is gone."""
    if not task_id:
        return None
    row = rows.get(task_id)
    return ref_of(row) if row is not None else JobRef(task_id)
