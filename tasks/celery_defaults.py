"""The Celery configuration the layer needs, applied wherever the user has not set it.

An adopter's `celery.py` reads their `CELERY_*` Django settings as usual; the layer's
app class (tasks.celery_app.TaskLayerCelery) then fills in every setting below that they left
unset. Whatever the user did set wins, even where it weakens a guarantee: `manage.py
check` says so (tasks.checks) instead of the layer overriding them behind their back.

Celery's own `app.add_defaults()` cannot do this: its layer is looked up before the
user's configuration (celery/utils/collections.py, `ConfigurationView.add_defaults`),
so it would override them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kombu import Exchange, Queue

from tasks.conf import layer_settings

#: The queue Celery publishes to when nobody named one: every producer that uses
#: Celery's defaults (`send_task` from another service, a plain `Celery(broker=...)`)
#: sends here, so a worker's default queues always include it.
CELERY_DEFAULT_QUEUE = "celery"

#: 12 hours: above any sane task run time and above the furthest ETA the layer gives
#: the broker (tasks.publish.outbox holds later jobs in the database).
DEFAULT_VISIBILITY_TIMEOUT = 12 * 60 * 60

REDIS_TRANSPORT = "tasks.runtime.redis_transport:Transport"
RESULT_BACKEND = "tasks.record.results:BatchedDatabaseBackend"

#: Plain values: the layer's choice wherever the user made none.
FIXED_DEFAULTS: Mapping[str, Any] = {
    # JSON only: pickle lets anyone who can write to the broker run code in workers.
    "task_serializer": "json",
    "result_serializer": "json",
    "accept_content": ["json"],
    "result_accept_content": ["json"],
    # At least once: acknowledged only after the task finished; a pool process that
    # dies mid-task gives its message back, counted as a retry (bounded by
    # max_retries, then dead-lettered) instead of looping as a poison pill.
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "task_retry_on_worker_lost": True,
    # A timed-out message is acknowledged and dead-lettered by the layer; requeued,
    # it would time out again forever.
    "task_acks_on_timeout": True,
    "task_track_started": True,
    "result_extended": True,
    # A worker holds no more unstarted messages than it has idle processes, so a
    # crash strands as few jobs as possible.
    "worker_prefetch_multiplier": 1,
    # Parks malformed messages and records what was wrong on the job's row.
    "worker_consumer": "tasks.runtime.consumer:TrackedConsumer",
    "broker_connection_retry_on_startup": True,
}

#: The layer's housekeeping, added to whatever beat schedule the user has.
BEAT_SCHEDULE: Mapping[str, Mapping[str, Any]] = {
    "tasklayer-prune-old-jobs": {"task": "tasks.retention.prune_jobs", "schedule": 15 * 60},
    # Publishes what is due in the database: held far-future jobs, failed retry
    # publishes, rows a relay could not publish. `expires`: a run that waited longer
    # than an interval is skipped, the next one does the same work.
    "tasklayer-publish-outbox": {
        "task": "tasks.outbox.publish_due",
        "schedule": 10.0,
        "options": {"expires": 10.0},
    },
}


def set_by_user(conf: Any, key: str) -> bool:
    """Whether `key` has a value from anywhere but Celery's built-in defaults.

    `conf` is Celery's Settings: its maps are the changes made at run time, the user's
    configuration (a Django settings object under its namespace, a module, a dict),
    and last Celery's defaults.
    """
    user_maps = conf.maps[:-1]
    return any(name in layer for layer in user_maps for name in conf._to_keys(key))


def is_redis(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("redis://", "rediss://", "redis+socket://"))


def is_amqp(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("amqp://", "amqps://", "pyamqp://"))


def acks_on_failure(broker_url: str | None) -> bool:
    """Acknowledge a failed message unless RabbitMQ's policy dead-letters it.

    With the policy (README), workers reject failed messages and the broker moves them
    to `dead_letter` itself; otherwise (Redis, or RabbitMQ without it) the message is
    acknowledged and the layer publishes a copy to `dead_letter`.
    """
    settings = layer_settings()
    broker_dead_letters = settings.dead_letter and settings.rabbitmq_dead_letter_policy
    return not (broker_dead_letters and is_amqp(broker_url))


def default_queues(conf: Any) -> tuple[Queue, ...]:
    """The user's default queue, plus Celery's own when theirs is another one."""
    names = [conf.task_default_queue]
    if CELERY_DEFAULT_QUEUE not in names:
        names.append(CELERY_DEFAULT_QUEUE)
    exchange_type = conf.task_default_exchange_type
    return tuple(Queue(name, Exchange(name, exchange_type), routing_key=name) for name in names)


def longest_time_limit(conf: Any) -> float:
    return float(conf.task_time_limit or 0)


def install(conf: Any, installed_apps: list[str] | None = None) -> None:
    """Fill in every layer default the user left unset (in `conf.changes`)."""
    for key, value in FIXED_DEFAULTS.items():
        if not set_by_user(conf, key):
            conf[key] = value

    if not set_by_user(conf, "task_acks_on_failure"):
        conf["task_acks_on_failure"] = acks_on_failure(conf.broker_url)

    if not set_by_user(conf, "task_queues"):
        conf["task_queues"] = default_queues(conf)

    if not set_by_user(conf, "result_backend") and "django_celery_results" in (
        installed_apps or []
    ):
        conf["result_backend"] = RESULT_BACKEND

    if is_redis(conf.broker_url) and not set_by_user(conf, "broker_transport"):
        conf["broker_transport"] = REDIS_TRANSPORT

    options = dict(conf.broker_transport_options or {})
    options.setdefault(
        "visibility_timeout", max(DEFAULT_VISIBILITY_TIMEOUT, 2 * longest_time_limit(conf))
    )
    conf["broker_transport_options"] = options

    schedule = dict(conf.beat_schedule or {})
    tasks_scheduled = {entry.get("task") for entry in schedule.values()}
    for name, entry in BEAT_SCHEDULE.items():
        if entry["task"] not in tasks_scheduled:
            schedule.setdefault(name, dict(entry))
    conf["beat_schedule"] = schedule
