"""What an operator may do to jobs: retry, replay and purge dead letters, cancel, prune,
in bulk with a preview; who is online to run them (worker heartbeats); what waits in
each queue, pausing, resuming and purging it.

The dashboard and the admin call these, and nothing else of the layer, to change jobs.
"""

from tasks.operations.batches import cancel_rest, cancel_rest_preview
from tasks.operations.broker_losses import recent_broker_losses
from tasks.operations.bulk import (
    BulkAction,
    BulkLimitExceeded,
    BulkResult,
    Preview,
    Tally,
    applies_to,
    bounded_count,
)
from tasks.operations.bulk import apply as apply_bulk
from tasks.operations.bulk import preview as preview_bulk
from tasks.operations.cancellation import CancelOutcome, Outcome, cancel, cancel_many
from tasks.operations.dead_letters import Replayed, purge, replay
from tasks.operations.queues import (
    Purged,
    QueueActionRefused,
    QueueState,
    pause_queue,
    purge_preview,
    purge_queue,
    queue_states,
    resume_queue,
)
from tasks.operations.reruns import Rerun, retry_jobs
from tasks.operations.retention import prune
from tasks.operations.schedules import (
    ScheduleMissing,
    ScheduleNotRunnable,
    ScheduleRun,
    beat_installed,
    registered_tasks,
    run_schedule_now,
    schedule_name,
    set_schedule_enabled,
)
from tasks.operations.workers import (
    ControlResult,
    PoolChange,
    WorkerState,
    WorkerStatus,
    lost_workers,
    resize_pool,
    worker_states,
)
from tasks.operations.workers import shutdown as shutdown_worker
from tasks.runtime.heartbeat import online as workers_online

__all__ = [
    "BulkAction",
    "BulkLimitExceeded",
    "BulkResult",
    "CancelOutcome",
    "ControlResult",
    "Outcome",
    "PoolChange",
    "Preview",
    "Purged",
    "QueueActionRefused",
    "QueueState",
    "Replayed",
    "Rerun",
    "ScheduleMissing",
    "ScheduleNotRunnable",
    "ScheduleRun",
    "Tally",
    "WorkerState",
    "WorkerStatus",
    "applies_to",
    "apply_bulk",
    "beat_installed",
    "bounded_count",
    "cancel",
    "cancel_many",
    "cancel_rest",
    "cancel_rest_preview",
    "lost_workers",
    "pause_queue",
    "preview_bulk",
    "prune",
    "purge",
    "purge_preview",
    "purge_queue",
    "queue_states",
    "recent_broker_losses",
    "registered_tasks",
    "replay",
    "resize_pool",
    "resume_queue",
    "retry_jobs",
    "run_schedule_now",
    "schedule_name",
    "set_schedule_enabled",
    "shutdown_worker",
    "worker_states",
    "workers_online",
]
