"""The layer's settings: one typed object, with a default for every field.

Field `hold_after` is read from the Django setting `TASKS_HOLD_AFTER`, and so on for
every field (`TASKS_` + its name in capitals). A project that sets none of them gets
the defaults, which are what this repository's deployment (project/settings.py) uses
when its environment sets nothing. docs/settings.md lists them all in one table.

    from tasks.conf import layer_settings

    lease = layer_settings().outbox_lease

The object is built and checked on first use, so a bad value raises
ImproperlyConfigured naming its setting, and it is built again after a `TASKS_*`
setting changes (`override_settings` in tests). Celery's own settings (`CELERY_*`,
the broker URL, time limits) are not here: they are the Celery app's (`app.conf`).
"""

from __future__ import annotations

import math
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

PREFIX = "TASKS_"

RETENTION_DAYS: Mapping[str, float] = MappingProxyType(
    {"SUCCESS": 7, "FAILURE": 30, "REVOKED": 30, "DEAD_LETTER": 90}
)
PUBLISH_RETRY_POLICY: Mapping[str, Any] = MappingProxyType(
    {"max_retries": 2, "interval_start": 0, "interval_step": 0.25, "interval_max": 0.5}
)
# What kombu's Connection.ensure() accepts, which Celery hands a retry_policy to.
_RETRY_POLICY_KEYS = frozenset(
    {
        "max_retries",
        "interval_start",
        "interval_step",
        "interval_max",
        "retry_errors",
        "errback",
        "on_revive",
    }
)


def setting_name(field_name: str) -> str:
    """The Django setting behind a field: `hold_after` -> `TASKS_HOLD_AFTER`."""
    return PREFIX + field_name.upper()


# --- Checks: each takes the setting's name (for the message) and its value, and returns
# the value the layer uses (numbers as float, sequences as tuples, mappings read-only).


def _fail(name: str, expected: str, value: Any) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name} must be {expected}; got {value!r}.")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _seconds(*, zero_allowed: bool) -> Callable[[str, Any], float]:
    def check(name: str, value: Any) -> float:
        if not _is_number(value) or value < 0 or (value == 0 and not zero_allowed):
            raise _fail(name, "a number of seconds " + (">= 0" if zero_allowed else "> 0"), value)
        return float(value)

    return check


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(name, "True or False", value)
    return value


def _names(name: str, value: Any) -> tuple[str, ...]:
    expected = "a list of names"
    if isinstance(value, str | bytes):  # would pass as a list of one-letter names
        raise _fail(name, expected, value)
    try:
        names = tuple(value)
    except TypeError:
        raise _fail(name, expected, value) from None
    if not all(isinstance(item, str) and item for item in names):
        raise _fail(name, expected, value)
    return names


def _name_set(name: str, value: Any) -> frozenset[str]:
    return frozenset(_names(name, value))


def _mapping(name: str, value: Any, expected: str) -> Mapping[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise _fail(name, expected, value)
    return value


def _queue_limits(name: str, value: Any) -> Mapping[str, int]:
    expected = "a dict of queue name -> maximum length (an int >= 0)"
    limits = _mapping(name, value, expected)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in limits.values()):
        raise _fail(name, expected, value)
    return MappingProxyType(dict(limits))


def _retention(name: str, value: Any) -> Mapping[str, float]:
    expected = f"a dict of {', '.join(RETENTION_DAYS)} -> days (a number >= 0)"
    days = _mapping(name, value, expected)
    if set(days) - set(RETENTION_DAYS) or not all(_is_number(d) and d >= 0 for d in days.values()):
        raise _fail(name, expected, value)
    return MappingProxyType({**RETENTION_DAYS, **days})  # what is not given keeps its default


def _retry_policy(name: str, value: Any) -> Mapping[str, Any]:
    expected = f"a dict with keys among {', '.join(sorted(_RETRY_POLICY_KEYS))}"
    policy = _mapping(name, value, expected) or PUBLISH_RETRY_POLICY  # {} too: the default
    if set(policy) - _RETRY_POLICY_KEYS:
        raise _fail(name, expected, value)
    return MappingProxyType(dict(policy))


def _signal_name(name: str, value: Any) -> str:
    # Celery's revoke() takes "SIGKILL" or "KILL" (celery.platforms.signals.signum).
    if (
        not isinstance(value, str)
        or (value if value.startswith("SIG") else "SIG" + value) not in signal.Signals.__members__
    ):
        raise _fail(name, "the name of a signal on this platform, such as 'SIGKILL'", value)
    return value


def _nice(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _fail(name, "an int >= 0 (a nice increment; 0 leaves the priority alone)", value)
    return value


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _fail(name, "an int >= 1", value)
    return value


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(name, "a string", value)
    return value


def _optional_url(name: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _fail(name, "None, '' or a redis:// URL", value)
    return value


def _limit(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _fail(name, "an int >= 0 (0: no limit)", value)
    return value


def _checked(default: Any, check: Callable[[str, Any], Any]) -> Any:
    if isinstance(default, Mapping):
        return field(default_factory=lambda: default, metadata={"check": check})
    return field(default=default, metadata={"check": check})


@dataclass(frozen=True, kw_only=True)
class LayerSettings:
    """Every setting of the layer, checked; read it through `layer_settings()`."""

    # --- Publishing: the outbox, far-future jobs, queue limits (tasks/publish/outbox.py) -------
    #: Seconds. A job whose ETA (countdown, eta, retry backoff) is further away waits in
    #: the outbox table instead of on the broker: Redis redelivers a message whose ETA
    #: outlasts its visibility timeout. 15 minutes keeps short retries on the broker.
    hold_after: float = _checked(15 * 60.0, _seconds(zero_allowed=True))
    #: Seconds before its ETA that a held job is published; must cover the reconciler's
    #: interval (beat runs it every 10 s), hence 30.
    hold_lead: float = _checked(30.0, _seconds(zero_allowed=True))
    #: Seconds a relay or publisher owns an outbox message it claimed; a process that
    #: dies mid-publish leaves it to another once the lease ends. Far above a bounded
    #: publish (publish_retry_policy, about a second), so 60.
    outbox_lease: float = _checked(60.0, _seconds(zero_allowed=False))
    #: Seconds between a worker's relay looks for committed jobs to publish: the longest
    #: a committed job waits for the broker. An idle look is one query on an empty index.
    relay_poll_interval: float = _checked(0.1, _seconds(zero_allowed=False))
    #: kombu retry policy for the commit hook's and the reconciler's publishes: give up
    #: within about a second, so a request never hangs on a dead broker. None or {}
    #: means this default.
    publish_retry_policy: Mapping[str, Any] = _checked(PUBLISH_RETRY_POLICY, _retry_policy)
    #: Queue name -> the most messages it may hold before `.delay()` raises QueueFull.
    #: Empty: every queue unlimited, as in Celery.
    queue_max_length: Mapping[str, int] = _checked(MappingProxyType({}), _queue_limits)
    #: Seconds a measured queue depth is reused per process, so a busy web process asks
    #: the broker once a second per limited queue, not on every `.delay()`.
    queue_depth_cache: float = _checked(1.0, _seconds(zero_allowed=True))

    # --- Recording (tasks/record/: service.py, sinks.py, recorder.py) ---------------------
    #: Tasks that get no Job row unless they fail: housekeeping run every few seconds
    #: would bury real jobs. The layer's own outbox reconciler by default.
    untracked_tasks: frozenset[str] = _checked(frozenset({"tasks.outbox.publish_due"}), _name_set)
    #: Write every job event before the call returns (tests, debugging) instead of
    #: through the event stream and the recorder. Off: one Redis write per event.
    record_synchronously: bool = _checked(False, _flag)
    #: The Redis URL of the job event stream. None: the broker's URL when the broker is
    #: Redis, else no stream; '': no stream, events go straight to the database.
    event_stream_url: str | None = _checked(None, _optional_url)
    #: How much the recorder beside each worker lowers its CPU priority (nice), so the
    #: worker's main process, Celery's serial bottleneck, comes first on a busy machine
    #: (docs/architecture.md, "Keeping the hot paths cheap"). 0 leaves it alone.
    recorder_nice: int = _checked(10, _nice)

    # --- Failures: dead letters (tasks/runtime/: dead_lettering.py, dead_letter_queue.py) ----
    #: Park final failures of every task (a task's own `dead_letter=` wins) in the
    #: `dead_letter` queue: a failure is then never lost, on any broker.
    dead_letter: bool = _checked(True, _flag)
    #: RabbitMQ has the dead-letter policy on the task queues: workers reject failed
    #: messages and the broker moves them. Off: the layer publishes the copy itself.
    rabbitmq_dead_letter_policy: bool = _checked(False, _flag)

    # --- Cancellation (tasks/runtime/cancellation.py) -----------------------------------------
    #: Seconds between a worker's reloads of cancelled job ids from the database, so a
    #: job cancelled while its worker was away is still discarded. One cheap query.
    cancel_refresh_seconds: float = _checked(10.0, _seconds(zero_allowed=False))
    #: The signal a hard cancel sends to the pool process running the job. SIGKILL,
    #: because task code can catch SIGTERM and pool children ignore SIGQUIT.
    cancel_hard_signal: str = _checked("SIGKILL", _signal_name)

    # --- Housekeeping (tasks/operations/retention.py) and the admin (dashboard/admin.py) ---------
    #: Days to keep finished jobs, per status, and dead letters longer; a dict given in
    #: part keeps the other defaults. Keeps the job table bounded.
    retention_days: Mapping[str, float] = _checked(RETENTION_DAYS, _retention)
    #: The queues the admin's job list filters by: listed, not SELECT DISTINCT over the
    #: whole table. The queues this repository's workers consume, and Celery's default
    #: queue (`celery`), which a producer on Celery's defaults sends to.
    queues: tuple[str, ...] = _checked(("high", "default", "low", "celery"), _names)

    # --- The dashboard (dashboard/) ---------------------------------------------------------
    #: The most jobs one bulk action (cancel, retry, replay, purge "all matching") may
    #: touch; past it the action is refused with a message, never done in part.
    bulk_action_limit: int = _checked(10_000, _positive_int)
    #: Seconds a web process reuses the answers of the dashboard's live fragments for
    #: every tab that asks (dashboard/read/shared.py): twenty open dashboards then cost
    #: the database what one does. 0: every refresh reads the database.
    dashboard_shared_seconds: float = _checked(2.0, _seconds(zero_allowed=True))
    #: The most rows one CSV export streams.
    export_limit: int = _checked(100_000, _positive_int)
    #: Argument keys whose values every page, export and the admin mask (shell-style
    #: patterns, case-insensitive, matched at any depth of args, kwargs and results).
    #: The row keeps the real value, so a replay gets it.
    #: Seconds between two heartbeats of a worker (written by the process beside it). A
    #: worker is online while its last beat is younger than three intervals, lost after:
    #: workers and web processes must agree on it.
    heartbeat_interval: float = _checked(5.0, _seconds(zero_allowed=False))
    #: Seconds between two looks at the Redis broker's marker by the watch beside each
    #: worker (tasks.runtime.broker_watch: one GET and INFO). 0 turns the watch off.
    broker_watch_interval: float = _checked(2.0, _seconds(zero_allowed=True))
    #: Seconds between two looks of that watch for unfinished or recent broker losses (a
    #: database query), which completes them and marks jobs recorded since.
    broker_watch_follow_up: float = _checked(15.0, _seconds(zero_allowed=False))
    #: Where the dashboard's "Flower" link points ('' for no link): Flower runs beside the
    #: web process, behind its own authentication.
    flower_url: str = _checked("", _text)
    redact_keys: tuple[str, ...] = _checked(
        ("*password*", "*secret*", "*token*", "*email*", "api_key", "authorization"), _names
    )

    # --- Probes and metrics (dashboard/probes/: /metrics, /readyz) -----------------------
    #: The bearer token a scraper sends to read /metrics (and /readyz's details):
    #: `Authorization: Bearer <token>`. Empty: only DEBUG's localhost and staff sessions
    #: may read them; in production /metrics then refuses everyone else.
    metrics_token: str = _checked("", _text)
    #: The most task names /metrics labels; the others are summed under "other", so a
    #: project with thousands of task names (or names made up at run time) cannot blow
    #: up the scraper's series. The busiest of the month keep their names.
    metrics_max_tasks: int = _checked(50, _positive_int)
    #: The queues /readyz wants at least one live worker for. Empty: the Celery app's
    #: default queue (`task_default_queue`), the one `.delay()` sends to.
    ready_queues: tuple[str, ...] = _checked((), _names)
    #: /readyz fails when a queue holds more messages than this (the dead-letter queue
    #: aside). 0: no limit.
    ready_max_backlog: int = _checked(10_000, _limit)
    #: /readyz fails when a queue would take longer than this to drain at its recent
    #: rate (seconds). 0: no limit.
    ready_max_drain_seconds: float = _checked(15 * 60.0, _seconds(zero_allowed=True))
    #: Seconds each /readyz check may take (a database or broker that does not answer
    #: fails its check after this, instead of hanging the probe).
    ready_check_timeout: float = _checked(2.0, _seconds(zero_allowed=False))

    def __post_init__(self) -> None:
        for f in fields(self):
            value = f.metadata["check"](setting_name(f.name), getattr(self, f.name))
            object.__setattr__(self, f.name, value)

    @classmethod
    def from_django(cls) -> LayerSettings:
        """The `TASKS_*` settings Django has; the others keep their defaults."""
        unset = object()
        # Any: the settings are the user's; __post_init__ checks each one.
        given: dict[str, Any] = {}
        for f in fields(cls):
            value = getattr(settings, setting_name(f.name), unset)
            if value is not unset:
                given[f.name] = value
        return cls(**given)


_current: LayerSettings | None = None


def layer_settings() -> LayerSettings:
    """The layer's settings, built on first use and kept until a TASKS_* setting changes.

    Cheap (a global read), so hot paths may call it on every publish.
    """
    global _current
    current = _current
    if current is None:
        current = _current = LayerSettings.from_django()
    return current


def _forget(*, setting: str = "", **_: Any) -> None:
    global _current
    if setting.startswith(PREFIX):
        _current = None


setting_changed.connect(_forget, weak=False, dispatch_uid="tasks.conf.layer_settings")
