"""Answers shared by every open dashboard for a moment.

Twenty operators with live pages open, refreshing every 2 s, ask the same few questions
ten times a second, and the answers are the same for all of them (what depends on the
user, the buttons, is part of the key). Each web process keeps an answer for
TASKS_DASHBOARD_SHARED_SECONDS (2 by default), so the database answers each question at
most once per interval per process however many tabs are open; a number is then at
most that much older than the page says. 0 turns it off (the tests do).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from tasks.conf import layer_settings

T = TypeVar("T")

_lock = threading.Lock()
_answers: dict[Hashable, tuple[float, Any]] = {}


def shared(key: Hashable, compute: Callable[[], T]) -> T:
    """compute(), or the answer this process computed for `key` within the interval."""
    interval = layer_settings().dashboard_shared_seconds
    if interval <= 0:
        return compute()
    now = time.monotonic()
    with _lock:
        kept = _answers.get(key)
    if kept is not None and now - kept[0] < interval:
        answer: T = kept[1]
        return answer
    answer = compute()
    with _lock:
        _answers[key] = (now, answer)
    return answer


def forget() -> None:
    """Drop every kept answer (tests)."""
    with _lock:
        _answers.clear()
