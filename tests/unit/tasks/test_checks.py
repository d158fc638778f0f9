"""`manage.py check` names what in a Celery setup defeats the layer, with ids and hints."""

from __future__ import annotations

import weakref
from typing import Any

import celery._state
import pytest
from celery import Celery
from kombu import Queue

from tasks.celery_app import TaskLayerCelery
from tasks.checks import celery_messages


@pytest.fixture(autouse=True)
def _no_shared_tasks_of_other_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Apps built here get only their own tasks: every `@shared_task` the suite declared
    (some with options refused on purpose) would otherwise join each app at finalize,
    and each one declared later would be built on every app still alive."""
    monkeypatch.setattr(celery._state, "_on_app_finalizers", set())
    # Nor do they stay among the live apps that later `@shared_task`s are added to.
    monkeypatch.setattr(celery._state, "_apps", weakref.WeakSet())


def layer_app(**user_settings: Any) -> TaskLayerCelery:
    source = type("Settings", (), {f"CELERY_{k.upper()}": v for k, v in user_settings.items()})
    app = TaskLayerCelery("adopter", set_as_current=False)
    app.config_from_object(source, namespace="CELERY")
    return app


def ids(app: Celery) -> list[str]:
    return [message.id for message in celery_messages(app)]


def test_the_layers_app_with_its_defaults_is_clean() -> None:
    assert ids(layer_app(broker_url="redis://127.0.0.1:6390/0")) == []


def test_a_plain_celery_app_is_an_error_whose_hint_is_the_one_line() -> None:
    app = Celery("adopter", set_as_current=False)
    (message,) = [m for m in celery_messages(app) if m.id == "tasklayer.E001"]
    assert "from tasks.celery_app import TaskLayerCelery as Celery" in message.hint


def test_a_task_class_that_is_not_tracked_is_an_error() -> None:
    app = TaskLayerCelery("adopter", set_as_current=False, task_cls="celery.app.task:Task")
    assert "tasklayer.E002" in ids(app)


def test_pickle_accepted_is_an_error() -> None:
    assert ids(layer_app(accept_content=["json", "pickle"])) == ["tasklayer.E003"]
    assert ids(layer_app(result_serializer="pickle")) == ["tasklayer.E003"]


def test_acks_late_off_is_a_warning() -> None:
    assert ids(layer_app(task_acks_late=False)) == ["tasklayer.W004"]


def test_a_visibility_timeout_below_the_longest_time_limit_is_an_error() -> None:
    app = layer_app(
        broker_url="redis://127.0.0.1:6390/0",
        broker_transport_options={"visibility_timeout": 600},
    )
    assert ids(app) == ["tasklayer.E005"]  # below TASKS_HOLD_AFTER + TASKS_HOLD_LEAD
    app = layer_app(broker_url="redis://127.0.0.1:6390/0", task_time_limit=50_000)
    assert ids(app) == []  # the layer's default timeout follows the global limit

    app = layer_app(broker_url="redis://127.0.0.1:6390/0")

    @app.task(name="shop.tasks.export", time_limit=86_400, shared=False)
    def export() -> None: ...

    (message,) = celery_messages(app)
    assert message.id == "tasklayer.E005"
    assert "shop.tasks.export" in message.msg


def test_the_visibility_timeout_is_not_a_concern_off_redis() -> None:
    app = layer_app(
        broker_url="amqp://guest:guest@127.0.0.1:5672//",
        broker_transport_options={"visibility_timeout": 10},
    )
    assert ids(app) == []


def test_a_queue_no_worker_configuration_consumes_is_a_warning() -> None:
    app = layer_app(task_routes={"shop.tasks.*": {"queue": "reports"}})

    @app.task(name="shop.tasks.mail", queue="emails", shared=False)
    def mail() -> None: ...

    messages = celery_messages(app)
    assert [m.id for m in messages] == ["tasklayer.W006", "tasklayer.W006"]
    assert "'emails'" in messages[0].msg
    assert "task shop.tasks.mail" in messages[0].msg
    assert "'reports'" in messages[1].msg
    assert "-Q emails" in messages[0].hint


def test_a_default_queue_declared_away_from_celerys_is_a_warning(settings: Any) -> None:
    settings.TASKS_QUEUES = ["default"]
    app = layer_app(task_queues=[Queue("default")], task_default_queue="default")
    assert "'celery'" in celery_messages(app)[0].msg
