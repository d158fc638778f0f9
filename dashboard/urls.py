"""The dashboard's pages: mount them with `path("dashboard/", include("dashboard.urls"))`.

Each live page has a fragment URL that its refresh control re-fetches (`.../live/`).
"""

from __future__ import annotations

from django.urls import path

from dashboard.views import actions, activity, failures, job, jobs, overview, running, task_stats

app_name = "dashboard"

urlpatterns = [
    path("", overview.overview, name="overview"),
    path("live/", overview.overview_live, name="overview-live"),
    path("live/charts/", overview.overview_charts, name="overview-charts"),
    path("jobs/", jobs.explorer, name="jobs"),
    path("jobs/export.csv", jobs.export, name="jobs-export"),
    path("jobs/suggest/", jobs.suggest, name="jobs-suggest"),
    path("jobs/bucket/", jobs.bucket, name="jobs-bucket"),
    # `path`, not `str`: a task id chosen by the caller (apply_async(task_id=...)) may
    # hold a slash. The live URL comes first, so ".../live/" is never read as an id.
    path("jobs/<path:task_id>/live/", job.job_live, name="job-live"),
    path("jobs/<path:task_id>/", job.job_detail, name="job"),
    path("actions/preview/", actions.preview, name="action-preview"),
    path("actions/apply/", actions.apply, name="action-apply"),
    path("failures/", failures.failures, name="failures"),
    path("failures/live/", failures.failures_live, name="failures-live"),
    path("running/", running.running, name="running"),
    path("running/live/", running.running_live, name="running-live"),
    path("tasks/", task_stats.task_list, name="tasks"),
    path("tasks/<str:name>/", task_stats.task_detail, name="task"),
    path("activity/", activity.activity, name="activity"),
]
