"""The layer's exceptions. Each says what went wrong and what to do about it."""

from __future__ import annotations

from kombu.exceptions import EncodeError, OperationalError


class TaskLayerError(Exception):
    """Base class for every error this layer raises."""


class UnserializableArguments(TaskLayerError, EncodeError):
    """A task was called with arguments the JSON serializer cannot encode.

    Nothing was recorded or published. Pass plain data (str, int, float, bool, None,
    lists and dicts of those) and database ids instead of model instances or objects.
    It subclasses kombu's EncodeError, which is what Celery itself raises for this.
    """


class InvalidTaskOption(TaskLayerError, TypeError):
    """A task was decorated with an option that does not exist or a value it cannot take.

    Raised when the module defining the task is imported, so a typo fails loudly at
    start-up instead of silently doing nothing.
    """


class BrokerUnavailable(TaskLayerError, OperationalError):
    """The broker did not take the message, so the job was not sent and nothing ran.

    Raised by `.delay()` / `.apply_async()` outside a database transaction (inside one,
    the job waits in the outbox and is published once the broker answers). Nothing was
    recorded as sent. Check that the broker (CELERY_BROKER_URL) is up and reachable, then
    call again; or enqueue inside `transaction.atomic()` so the layer keeps the job for
    you. It subclasses kombu's OperationalError, which is what Celery itself raises.
    """


class QueueFull(TaskLayerError):
    """The job's queue holds TASKS_QUEUE_MAX_LENGTH messages already; the job was refused.

    Nothing was recorded or published. Back off and try again later, tell the user the
    system is busy, or raise the limit (TASKS_QUEUE_MAX_LENGTH) if workers keep up.
    """


class InvalidUniqueKey(TaskLayerError, ValueError):
    """A task's `unique_key` names an argument the task does not take, or is not a tuple
    of argument names or a callable returning a string. Fix the task's declaration."""


class JobWriteRefused(TaskLayerError):
    """Code outside tasks/models.py tried to update or delete Job rows directly.

    A job's status-owned columns are written only by the recording service
    (tasks.record.service), and every other change of a row is a named method of
    `JobQuerySet` (tasks/models.py lists them all), so that each way a row changes has
    one place. Call that method, or add one there, instead of `.update()` / `.delete()`.
    """
