"""Celery's defaults are served, and the layer's fill in only what the user left unset."""

from __future__ import annotations

from typing import Any

from tasks import celery_defaults
from tasks.celery_app import TaskLayerCelery


def configured(**user_settings: Any) -> Any:
    """A layer app configured from Django-style CELERY_* settings, as adopters write them."""
    source = type("Settings", (), {f"CELERY_{k.upper()}": v for k, v in user_settings.items()})
    app = TaskLayerCelery("adopter", set_as_current=False)
    app.config_from_object(source, namespace="CELERY")
    return app.conf


def test_the_layer_fills_in_what_the_user_left_unset() -> None:
    conf = configured(broker_url="redis://127.0.0.1:6390/0")
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.accept_content == ["json"]
    assert conf.worker_consumer == "tasks.runtime.consumer:TrackedConsumer"
    assert conf.broker_transport == celery_defaults.REDIS_TRANSPORT
    assert conf.broker_transport_options["visibility_timeout"] >= 12 * 3600
    assert conf.task_default_queue == "celery"  # Celery's, not changed behind the user's back
    assert [queue.name for queue in conf.task_queues] == ["celery"]


def test_whatever_the_user_set_wins_even_a_weaker_choice() -> None:
    conf = configured(
        task_acks_late=False,
        accept_content=["json", "pickle"],
        broker_transport_options={"visibility_timeout": 60, "priority_steps": [0, 5]},
        broker_url="amqp://guest:guest@127.0.0.1:5672//",
    )
    assert conf.task_acks_late is False
    assert conf.accept_content == ["json", "pickle"]
    assert conf.broker_transport_options == {"visibility_timeout": 60, "priority_steps": [0, 5]}
    assert conf.broker_transport is None  # not Redis: kombu's own transport


def test_a_worker_consumes_the_users_default_queue_and_celerys() -> None:
    conf = configured(task_default_queue="default")
    assert [queue.name for queue in conf.task_queues] == ["default", "celery"]
    user_queues = configured(task_queues=[{"name": "only"}]).task_queues
    assert user_queues == [{"name": "only"}]


def test_beat_gets_the_layers_housekeeping_beside_the_users_entries_once() -> None:
    users = {"nightly": {"task": "shop.tasks.report", "schedule": 86400}}
    conf = configured(beat_schedule=users)
    tasks = sorted(entry["task"] for entry in conf.beat_schedule.values())
    assert tasks == ["shop.tasks.report", "tasks.outbox.publish_due", "tasks.retention.prune_jobs"]
    own = {"prune": {"task": "tasks.retention.prune_jobs", "schedule": 60}}
    conf = configured(beat_schedule=own)
    assert conf.beat_schedule["prune"]["schedule"] == 60
    assert sum(e["task"] == "tasks.retention.prune_jobs" for e in conf.beat_schedule.values()) == 1


def test_failed_messages_are_left_to_rabbitmqs_dead_letter_policy_only_when_it_is_there(
    settings: Any,
) -> None:
    amqp = "amqp://guest:guest@127.0.0.1:5672//"
    assert configured(broker_url=amqp).task_acks_on_failure is True
    settings.TASKS_RABBITMQ_DEAD_LETTER_POLICY = True
    assert configured(broker_url=amqp).task_acks_on_failure is False
    assert configured(broker_url="redis://127.0.0.1:6390/0").task_acks_on_failure is True
    settings.TASKS_DEAD_LETTER = False
    assert configured(broker_url=amqp).task_acks_on_failure is True
