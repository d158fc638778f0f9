"""Which jobs an operator's action is about: rows they ticked, or everything a filter
matches. Both come from the same form fields on every page (`task_id`, repeated, or
`q`), so the preview and the action that follows it read the same set. `scope=all`
means "all jobs matching `q`" even when rows are ticked; `scope=selected` means the
ticked rows only."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet
from django.http import QueryDict

from dashboard.search.jobs import matching_jobs
from dashboard.search.language import parse
from tasks.models import Job

#: Selected rows travel in the form; more than this is a filter's job.
MAX_SELECTED = 1000


@dataclass(frozen=True)
class Scope:
    task_ids: tuple[str, ...] = ()
    query: str = ""

    @classmethod
    def from_form(cls, data: QueryDict) -> Scope:
        """From POSTed fields; a bad filter raises FilterError, nothing selected ValueError."""
        everything = data.get("scope") == "all"
        ids = tuple(dict.fromkeys(i for i in data.getlist("task_id") if i))[:MAX_SELECTED]
        if ids and not everything:
            return cls(task_ids=ids)
        if everything or ("q" in data and data.get("scope") != "selected"):
            query = data.get("q", "").strip()
            parse(query)  # a malformed filter fails here, before anything is counted
            return cls(query=query)
        raise ValueError("No jobs selected: tick some rows, or act on all jobs matching a filter.")

    def jobs(self) -> QuerySet[Job]:
        if self.task_ids:
            return Job.objects.filter(task_id__in=self.task_ids)
        return matching_jobs(parse(self.query))

    def describe(self) -> str:
        """For the audit log and the confirmation: what the operator picked."""
        if self.task_ids:
            count = len(self.task_ids)
            return f"{count} selected job" + ("" if count == 1 else "s")
        return f"all jobs matching: {self.query}" if self.query else "all jobs"
