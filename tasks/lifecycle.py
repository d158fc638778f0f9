"""Which state change may overwrite which: the precedence rule, as pure data.

Events about one job arrive from several processes (the publisher, the worker's main
process, the pool child) and, once writes are batched, in any order. A row therefore
only moves forward. Forward is ordered first by attempt, then by stage within the
attempt, and a terminal state is final:

    PENDING(0) < SENT(0) < RECEIVED(1) < STARTED(1) < RETRY(1) < RECEIVED(2) < ... < terminal

`attempt` is the number of attempts that have started once the event is true, so a
retry's new message (published with `retries=1`) and the RETRY of attempt 1 compare
equal, and the second attempt's RECEIVED outranks both.
"""

from __future__ import annotations

from tasks.models import JobStatus

STAGE: dict[str, int] = {
    JobStatus.PENDING: 0,
    JobStatus.SENT: 1,
    JobStatus.RECEIVED: 2,
    JobStatus.STARTED: 3,
    JobStatus.RETRY: 4,
    JobStatus.SUCCESS: 9,
    JobStatus.FAILURE: 9,
    JobStatus.REVOKED: 9,
}
TERMINAL: frozenset[str] = frozenset({JobStatus.SUCCESS, JobStatus.FAILURE, JobStatus.REVOKED})


def supersedes(new_status: str, new_attempt: int, old_status: str, old_attempt: int) -> bool:
    """True when an event (new_status, new_attempt) may overwrite a row in old_status.

    Equal positions supersede each other so that two halves of one state (the retry's
    re-publish and the RETRY signal) both land.
    """
    if old_status in TERMINAL:
        return False
    if new_status in TERMINAL:
        return True
    return (new_attempt, STAGE[new_status]) >= (old_attempt, STAGE[old_status])


def sql_wins(old: str = "{old}", new: str = "{new}") -> str:
    """`supersedes` as SQL over an existing row `old` and an incoming row `new`.

    Used by the bulk upsert (tasks.record.upsert), where the incoming row is EXCLUDED.
    """
    terminal = ", ".join(f"'{status}'" for status in sorted(TERMINAL))

    def rank(row: str) -> str:
        whens = " ".join(f"WHEN '{status}' THEN {stage}" for status, stage in STAGE.items())
        return f"(CASE {row}.status {whens} ELSE 0 END)"

    return (
        f"({old}.status NOT IN ({terminal}) AND ({new}.status IN ({terminal})"
        f" OR {new}.attempts > {old}.attempts"
        f" OR ({new}.attempts = {old}.attempts AND {rank(new)} >= {rank(old)})))"
    )
