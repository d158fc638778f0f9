"""Task options: checked when a task is decorated, translated into what the layer runs on.

`@shared_task(...)` options become attributes of the task class. Celery accepts any
keyword there, so a typo (`max_retry=5`, `retry_backof=...`) silently does nothing;
here an unknown option is an error at import time, naming the options that exist.

The layer's options on top of Celery's:

- `retry_backoff`: a strategy name (`"exponential"`, `"linear"`, `"fixed"`, `"none"`)
  or Celery's True / seconds; `retry_backoff_base` (seconds, default 1),
  `retry_backoff_max` (cap, Celery's name, default 600), `retry_jitter` (full jitter,
  Celery's name, default on). See tasks.runtime.retry_policy.
- `retry_on_soft_time_limit` (default True): a soft time limit is retried like the
  exceptions in `autoretry_for`.
- `dead_letter` (default: the TASKS_DEAD_LETTER setting, on): a final failure parks the
  message in the `dead_letter` queue and marks the job dead-lettered.
- `unique_key`, `unique_ttl`: see tasks.publish.uniqueness.
- `publish_on_commit`: see tasks.task.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from tasks.exceptions import InvalidTaskOption
from tasks.runtime import retry_policy

LAYER_OPTIONS = frozenset(
    {
        "dead_letter",
        "unique_key",
        "unique_ttl",
        "retry_backoff_base",
        "retry_on_soft_time_limit",
        "publish_on_commit",
    }
)
# Read by Celery's autoretry wrapper and app.task(), not attributes of the Task class.
CELERY_DECORATOR_OPTIONS = frozenset(
    {
        "autoretry_for",
        "dont_autoretry_for",
        "retry_kwargs",
        "retry_backoff",
        "retry_backoff_max",
        "retry_jitter",
        "queue",
        "exchange",
        "routing_key",
        "shared",
        "lazy",
        "filter",
        "pydantic",
        "pydantic_strict",
        "pydantic_context",
        "pydantic_dump_kwargs",
    }
)
CELERY_TASK_ATTRIBUTES = frozenset(name for name in dir(Task) if not name.startswith("_"))
KNOWN_OPTIONS = LAYER_OPTIONS | CELERY_DECORATOR_OPTIONS | CELERY_TASK_ATTRIBUTES


def prepare(
    fun: Callable[..., Any], options: dict[str, Any], soft_limit_default: Any = None
) -> dict[str, Any]:
    """Check a task's decorator options and return the ones to give Celery.

    Raises InvalidTaskOption, naming the task, for an unknown option or a bad value.
    """
    where = f"{getattr(fun, '__module__', '?')}.{getattr(fun, '__qualname__', fun)}"
    unknown = sorted(set(options) - KNOWN_OPTIONS)
    if unknown:
        raise InvalidTaskOption(
            f"Task {where}: unknown option(s) {', '.join(unknown)}. Task options are "
            "Celery's (max_retries, autoretry_for, retry_backoff, time_limit, "
            "soft_time_limit, queue, acks_late, ... any attribute of celery.Task) and "
            "this layer's "
            f"({', '.join(sorted(LAYER_OPTIONS))})."
        )
    prepared = dict(options)
    try:
        policy = retry_policy.from_task_options(
            options.get("retry_backoff", False),
            options.get("retry_backoff_base"),
            options.get("retry_backoff_max"),
            options.get("retry_jitter"),
        )
    except (TypeError, ValueError) as exc:
        raise InvalidTaskOption(f"Task {where}: {exc}") from exc
    if "retry_backoff" in options:
        # The layer computes every retry's countdown (TrackedTask.retry); Celery's
        # autoretry wrapper must not, and could not parse a strategy name anyway.
        prepared["retry_backoff"] = False
        prepared["retry_policy"] = policy
        if policy is None:
            # An explicit "no backoff" keeps Celery's fixed delay for plain retries.
            prepared.setdefault("default_retry_delay", 180)
    _check_autoretry(where, options)
    _check_unique_key(where, fun, options)
    if options.get("retry_on_soft_time_limit", True) and (
        options.get("soft_time_limit") or soft_limit_default
    ):
        retried = tuple(options.get("autoretry_for", ()))
        if not any(issubclass(SoftTimeLimitExceeded, kind) for kind in retried):
            prepared["autoretry_for"] = (*retried, SoftTimeLimitExceeded)
    if "dead_letter" in options:
        if not isinstance(options["dead_letter"], bool):
            raise InvalidTaskOption(f"Task {where}: dead_letter must be True or False.")
        if not options["dead_letter"]:
            # Acknowledged, never rejected into a broker's dead-letter exchange.
            prepared.setdefault("acks_on_failure", True)
    return prepared


def _check_autoretry(where: str, options: Mapping[str, Any]) -> None:
    for name in ("autoretry_for", "dont_autoretry_for"):
        kinds = options.get(name, ())
        if not isinstance(kinds, (tuple, list)) or not all(
            isinstance(kind, type) and issubclass(kind, BaseException) for kind in kinds
        ):
            raise InvalidTaskOption(
                f"Task {where}: {name} must be a tuple of exception classes, got {kinds!r}."
            )
    max_retries = options.get("max_retries", 0)
    if max_retries is not None and (not isinstance(max_retries, int) or max_retries < 0):
        raise InvalidTaskOption(
            f"Task {where}: max_retries must be a non-negative int or None (unbounded)."
        )


def _check_unique_key(where: str, fun: Callable[..., Any], options: Mapping[str, Any]) -> None:
    ttl = options.get("unique_ttl", 1)
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl <= 0:
        raise InvalidTaskOption(f"Task {where}: unique_ttl must be a positive number of seconds.")
    key = options.get("unique_key")
    if key is None or callable(key):
        return
    if isinstance(key, str):
        key = (key,)
    if not isinstance(key, (tuple, list)) or not all(isinstance(name, str) for name in key):
        raise InvalidTaskOption(
            f"Task {where}: unique_key must be argument names (a tuple of str) or a "
            f"callable taking (args, kwargs), got {key!r}."
        )
    try:
        parameters = inspect.signature(fun).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    missing = [name for name in key if name not in parameters]
    if missing:
        raise InvalidTaskOption(
            f"Task {where}: unique_key names {', '.join(missing)}, which the function "
            f"does not take (it takes {', '.join(parameters) or 'no arguments'})."
        )
