"""The dashboard's pages: mount them with `path("dashboard/", include("dashboard.urls"))`.

Each live page has a fragment URL that its refresh control re-fetches (`.../live/`).
"""

from __future__ import annotations

from django.urls import path

from dashboard.views import (
    actions,
    activity,
    batches,
    failures,
    job,
    jobs,
    overview,
    queues,
    running,
    schedules,
    task_stats,
    workers,
)

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
    # Queues: depth from the broker, pause/resume on every worker, purge with a preview.
    path("queues/", queues.queues, name="queues"),
    path("queues/live/", queues.queues_live, name="queues-live"),
    path("queues/<str:name>/pause/", queues.pause, name="queue-pause"),
    path("queues/<str:name>/resume/", queues.resume, name="queue-resume"),
    path("queues/<str:name>/purge/", queues.purge, name="queue-purge"),
    # Workers: alive or lost (heartbeats), pool grow/shrink, graceful shutdown.
    path("workers/", workers.workers, name="workers"),
    path("workers/live/", workers.workers_live, name="workers-live"),
    path("workers/<str:hostname>/pool/", workers.worker_pool, name="worker-pool"),
    path("workers/<str:hostname>/shutdown/", workers.worker_shutdown, name="worker-shutdown"),
    # Schedules (django-celery-beat): next run, last outcomes, enable/disable, run now.
    path("schedules/", schedules.schedules, name="schedules"),
    path("schedules/live/", schedules.schedules_live, name="schedules-live"),
    path("schedules/<int:pk>/run/", schedules.run_now, name="schedule-run"),
    path("schedules/<int:pk>/enabled/", schedules.set_enabled, name="schedule-enabled"),
    # Batches: every group and chord, its progress, its jobs, a CSV of its items.
    path("batches/", batches.batch_list, name="batches"),
    path("batches/live/", batches.batch_list_live, name="batches-live"),
    path("batches/<path:group_id>/export.csv", batches.batch_export, name="batch-export"),
    path("batches/<path:group_id>/cancel/", batches.batch_cancel, name="batch-cancel"),
    path("batches/<path:group_id>/live/", batches.batch_live, name="batch-live"),
    path("batches/<path:group_id>/", batches.batch_detail, name="batch"),
]
