"""Masking personal data (e-mails, tokens, passwords) wherever the dashboard shows a job.

Keys matching TASKS_REDACT_KEYS (shell-style, case-insensitive) have their values
replaced at any depth of args, kwargs and results, on every page, in every export and
in the admin. Only what is shown is masked: the row keeps the real value, so a retry or
a replay runs with it.
"""

from __future__ import annotations

import fnmatch
from functools import lru_cache
from typing import Any

from tasks.conf import layer_settings

MASK = "***"


def redact(value: Any, patterns: tuple[str, ...] | None = None) -> Any:
    """`value` with the values of sensitive keys masked (a copy; `value` is unchanged)."""
    return _redact(
        value, _matcher(patterns if patterns is not None else layer_settings().redact_keys)
    )


@lru_cache(maxsize=8)
def _matcher(patterns: tuple[str, ...]) -> Any:
    lowered = tuple(pattern.lower() for pattern in patterns)

    def sensitive(key: str) -> bool:
        key = key.lower()
        return any(fnmatch.fnmatchcase(key, pattern) for pattern in lowered)

    return sensitive


def _redact(value: Any, sensitive: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: MASK if isinstance(key, str) and sensitive(key) else _redact(item, sensitive)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(item, sensitive) for item in value]
    return value


#: Celery's own copies of the arguments in a message's headers: reprs of args and
#: kwargs, in which a key cannot be told from a value, so they are hidden whole.
ARGUMENT_REPRS = ("argsrepr", "kwargsrepr")


def redact_message(message: Any) -> Any:
    """A stored message (headers and routing options) with its arguments masked."""
    redacted = redact(message)
    if isinstance(redacted, dict):
        headers = redacted.get("headers")
        if isinstance(headers, dict):
            for name in ARGUMENT_REPRS:
                if headers.get(name):
                    headers[name] = MASK
    return redacted
