"""`unique_key`: at most one pending or running job per key.

    @shared_task(unique_key=("account_id",), unique_ttl=600)
    def sync_account(account_id, full=False): ...

While a job of `sync_account` for account 7 is PENDING, SENT, RECEIVED, STARTED or
RETRY, `sync_account.delay(7)` returns that job's AsyncResult and records and publishes
nothing. `unique_key` is a tuple of argument names (their values, defaults applied,
make the key) or a callable `(args, kwargs) -> str`; keys are per task name.

Where the lock lives: in the database, as the job's own row. The holder is the newest
job of that task whose row carries the key (`Job.message["unique_key"]`), is not
finished and was created less than `unique_ttl` seconds ago. So:
- it works on every broker (RabbitMQ has nothing like SET NX);
- a rollback of the caller's transaction removes the row, hence the lock, for free
  (a lock in Redis would outlive the rolled-back job and block the key for its TTL);
- it is released when the job reaches SUCCESS, FAILURE or REVOKED, with no release
  hook that a killed worker could miss, and lapses after `unique_ttl` even if the job
  never finishes (a lost message, a stuck worker);
- the check and the insert are serialised per key by a transaction-scoped advisory
  lock on PostgreSQL (`pg_advisory_xact_lock`, released at commit or rollback), so two
  concurrent requests cannot both miss each other's uncommitted row: the second waits
  for the first to commit, then sees its job. SQLite serialises writers anyway
  (IMMEDIATE transactions); other databases get no such guarantee.

The lookup uses the `(status, created_at)` and `(name, created_at)` indexes: its cost
grows with the unfinished jobs of the task within the TTL, small in a healthy system.
Only tasks with a `unique_key` pay for it (one lock and one query per `.delay()`).
A dedicated lock table (key unique, task id, expiry) would make it one index probe at
any backlog; see the report that introduced this module.

Not covered: jobs published around the layer (`send_task` from another process) carry
no key; a retry keeps its job (and key) and is never deduplicated.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from tasks.exceptions import InvalidUniqueKey
from tasks.models import Job, JobStatus

UNFINISHED = (
    JobStatus.PENDING,
    JobStatus.SENT,
    JobStatus.RECEIVED,
    JobStatus.STARTED,
    JobStatus.RETRY,
)
MAX_KEY_LENGTH = 200  # longer keys are stored as a digest

_signatures: dict[Any, inspect.Signature] = {}


def key_for(task: Any, args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None) -> str | None:
    """The uniqueness key of this call, or None when the task has no `unique_key`."""
    spec = task.unique_key
    if spec is None:
        return None
    if inspect.ismethod(spec) and spec.__self__ is task:
        spec = spec.__func__  # a function set as a class attribute comes back bound
    args, kwargs = tuple(args or ()), dict(kwargs or {})
    if callable(spec):
        value = spec(args, kwargs)
        if not isinstance(value, str):
            raise InvalidUniqueKey(
                f"unique_key of task {task.name!r} returned {type(value).__name__}, not str."
            )
    elif isinstance(spec, (tuple, list)) and all(isinstance(name, str) for name in spec):
        value = json.dumps(_argument_values(task, spec, args, kwargs), sort_keys=True, default=str)
    else:
        raise InvalidUniqueKey(
            f"unique_key of task {task.name!r} must be a tuple of argument names or a "
            f"callable (args, kwargs) -> str, not {spec!r}."
        )
    key = f"{task.name}:{value}"
    if len(key) > MAX_KEY_LENGTH:
        key = f"{task.name}:sha256:{hashlib.sha256(value.encode()).hexdigest()}"
    return key


def holder(task: Any, key: str) -> str | None:
    """The task id holding `key`, after taking the per-key lock for this transaction.

    Call inside the transaction that will write the new job's row.
    """
    _lock(key)
    since = timezone.now() - timedelta(seconds=task.unique_ttl)
    found: str | None = (
        Job.objects.filter(
            name=task.name,
            status__in=UNFINISHED,
            created_at__gte=since,
            message__unique_key=key,
        )
        .order_by("-created_at")
        .values_list("task_id", flat=True)
        .first()
    )
    return found


def message_field(key: str) -> dict[str, Any]:
    """What the new job's row carries in `Job.message` to hold the key."""
    return {"unique_key": key}


def _argument_values(
    task: Any, names: Sequence[str], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> list[Any]:
    signature = _signature(task)
    unknown = [name for name in names if name not in signature.parameters]
    if unknown:
        raise InvalidUniqueKey(
            f"unique_key of task {task.name!r} names {unknown}, which the task does not "
            f"take; its arguments are {list(signature.parameters)}."
        )
    bound = signature.bind_partial(*args, **kwargs)
    bound.apply_defaults()
    return [bound.arguments.get(name) for name in names]


def _signature(task: Any) -> inspect.Signature:
    # Cached per task class: inspect.signature costs tens of microseconds.
    cls = type(task)
    signature = _signatures.get(cls)
    if signature is None:
        signature = _signatures[cls] = inspect.signature(task.run)
    return signature


def _lock(key: str) -> None:
    if connection.vendor == "postgresql":
        number = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
        number -= 1 << 63  # PostgreSQL's bigint is signed
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [number])


def connect(app: Any) -> None:
    """Nothing to wire: the lock is released by the job's own final state (see above)."""
