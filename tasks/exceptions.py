"""The layer's exceptions. Each says what went wrong and what to do about it."""

from __future__ import annotations

from kombu.exceptions import EncodeError


class TaskLayerError(Exception):
    """Base class for every error this layer raises."""


class UnserializableArguments(TaskLayerError, EncodeError):
    """A task was called with arguments the JSON serializer cannot encode.

    Nothing was recorded or published. Pass plain data (str, int, float, bool, None,
    lists and dicts of those) and database ids instead of model instances or objects.
    It subclasses kombu's EncodeError, which is what Celery itself raises for this.
    """
