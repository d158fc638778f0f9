"""`manage.py check` tells an adopter what in their Celery setup defeats the layer.

Each message names what is wrong, what it costs, and the line that fixes it. The
checks read the Celery app the project created (`celery.current_app`); each function
takes the app as an argument so that it can be tested on any configuration.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from celery import current_app
from django.core import checks
from django.core.checks import CheckMessage, Error, register

from tasks.celery_app import TaskLayerCelery
from tasks.celery_defaults import CELERY_DEFAULT_QUEUE, is_redis
from tasks.conf import layer_settings
from tasks.task import TrackedTask

TAG = "tasklayer"
UNSAFE_SERIALIZERS = frozenset({"pickle", "application/x-python-serialize", "yaml"})
#: kombu's Redis transport restores unacknowledged messages after this by default.
KOMBU_VISIBILITY_TIMEOUT = 3600


def _layer_app_messages(app: Any) -> list[CheckMessage]:
    if not isinstance(app, TaskLayerCelery):
        return [
            Error(
                f"The Celery app {app.main or '(none created)'!r} is not the task layer's: "
                "jobs are not recorded, retried or dead-lettered.",
                hint="In your project's celery.py, replace `from celery import Celery` with "
                "`from tasks.celery_app import TaskLayerCelery as Celery` (and import that module "
                "from your project's __init__.py, as Celery's Django guide shows).",
                id="tasklayer.E001",
            )
        ]
    if not issubclass(app.Task, TrackedTask):
        return [
            Error(
                f"The Celery app's task class {app.Task.__module__}.{app.Task.__name__} is "
                "not a TrackedTask: transactional enqueue and argument checks are off.",
                hint="Drop task_cls from the app, or make your class subclass "
                "tasks.task.TrackedTask.",
                id="tasklayer.E002",
            )
        ]
    return []


def _serializer_messages(conf: Any) -> list[CheckMessage]:
    accepted = {*conf.accept_content, *(conf.result_accept_content or ())}
    used = {conf.task_serializer, conf.result_serializer}
    unsafe = sorted((accepted | used) & UNSAFE_SERIALIZERS)
    if not unsafe:
        return []
    return [
        Error(
            f"Celery accepts or sends {', '.join(unsafe)}: anyone who can write to the "
            "broker can run code in your workers, and the layer stores JSON only.",
            hint="Remove CELERY_ACCEPT_CONTENT / CELERY_RESULT_ACCEPT_CONTENT / "
            "CELERY_TASK_SERIALIZER from your settings (the layer's default is JSON only), "
            'or set them to ["json"] / "json".',
            id="tasklayer.E003",
        )
    ]


def _acks_messages(conf: Any) -> list[CheckMessage]:
    if conf.task_acks_late:
        return []
    return [
        checks.Warning(
            "CELERY_TASK_ACKS_LATE is off: a message is acknowledged before its task runs, "
            "so a worker killed mid-task loses the job (never retried, never "
            "dead-lettered).",
            hint="Remove CELERY_TASK_ACKS_LATE from your settings (the layer's default is "
            "True) and make tasks idempotent: a job may then run twice.",
            id="tasklayer.W004",
        )
    ]


def _time_limits(app: Any) -> Iterable[tuple[str, float]]:
    if app.conf.task_time_limit:
        yield "CELERY_TASK_TIME_LIMIT", float(app.conf.task_time_limit)
    for name, task in sorted(app.tasks.items()):
        limit = getattr(task, "time_limit", None)
        if limit:
            yield f"{name} (time_limit)", float(limit)
    settings = layer_settings()
    if settings.hold_after:
        yield "TASKS_HOLD_AFTER + TASKS_HOLD_LEAD", settings.hold_after + settings.hold_lead


def _visibility_messages(app: Any) -> list[CheckMessage]:
    if not is_redis(app.conf.broker_url):
        return []
    options = app.conf.broker_transport_options or {}
    timeout = float(options.get("visibility_timeout", KOMBU_VISIBILITY_TIMEOUT))
    too_long = [(what, limit) for what, limit in _time_limits(app) if limit >= timeout]
    if not too_long:
        return []
    what, limit = max(too_long, key=lambda item: item[1])
    return [
        Error(
            f"The Redis visibility timeout ({timeout:g} s) is not above {what} ({limit:g} s): "
            "Redis delivers a message again when it has been unacknowledged that long, so "
            "such a job runs twice, while still running or while waiting for its ETA.",
            hint="Raise CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout'] well above "
            f"{limit:g} (or drop it: the layer's default is 12 h), or lower the limit.",
            id="tasklayer.E005",
        )
    ]


def consumed_queues(app: Any) -> set[str]:
    """What workers consume: the app's queues (a worker without -Q) and TASKS_QUEUES."""
    return set(app.amqp.queues) | set(layer_settings().queues)


def routed_queues(app: Any) -> dict[str, str]:
    """Every queue a message can be sent to, with who sends there."""
    routed = {
        app.conf.task_default_queue: "CELERY_TASK_DEFAULT_QUEUE",
        CELERY_DEFAULT_QUEUE: "producers that use Celery's defaults",
    }
    routes = app.conf.task_routes
    for pattern, route in routes.items() if isinstance(routes, dict) else ():
        if isinstance(route, dict) and route.get("queue"):
            routed.setdefault(route["queue"], f"CELERY_TASK_ROUTES[{pattern!r}]")
    for name, task in sorted(app.tasks.items()):
        queue = getattr(task, "queue", None)
        if isinstance(queue, str) and queue:
            routed.setdefault(queue, f"task {name}")
    return routed


def _queue_messages(app: Any) -> list[CheckMessage]:
    consumed = consumed_queues(app)
    return [
        checks.Warning(
            f"No worker configuration consumes queue {queue!r} (used by {sender}): its "
            "jobs wait forever.",
            hint=f"Start a worker with `-Q {queue},...`, and list it in TASKS_QUEUES or "
            "CELERY_TASK_QUEUES, or route the tasks to a queue that is consumed.",
            id="tasklayer.W006",
        )
        for queue, sender in sorted(routed_queues(app).items())
        if queue not in consumed
    ]


def celery_messages(app: Any) -> list[CheckMessage]:
    """Every finding about `app`'s configuration."""
    configuration = [*_serializer_messages(app.conf), *_acks_messages(app.conf)]
    not_the_layers = _layer_app_messages(app)
    if not_the_layers:
        # Its tasks may carry the layer's options, which a plain Celery app rejects
        # when it builds them: only what the configuration alone says.
        return [*not_the_layers, *configuration]
    return [*configuration, *_visibility_messages(app), *_queue_messages(app)]


@register(TAG)
def check_celery_app(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    # current_app is a Proxy at runtime; celery-types types it as the app itself.
    return celery_messages(current_app._get_current_object())  # type: ignore[attr-defined]
