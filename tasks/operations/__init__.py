"""What an operator may do to jobs: retry, replay and purge dead letters, cancel, prune.

The dashboard and the admin call these, and nothing else of the layer, to change jobs.
"""

from tasks.operations.cancellation import CancelOutcome, Outcome, cancel, cancel_many
from tasks.operations.dead_letters import Replayed, purge, replay
from tasks.operations.reruns import Rerun, retry_jobs
from tasks.operations.retention import prune

__all__ = [
    "CancelOutcome",
    "Outcome",
    "Replayed",
    "Rerun",
    "cancel",
    "cancel_many",
    "prune",
    "purge",
    "replay",
    "retry_jobs",
]
