"""Celery's defaults are served, and the layer's fill in only what the user left unset."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from django.test import Client

from tasks import celery_defaults
from tasks.celery_app import TaskLayerCelery
from tasks.models import JobStatus
from tests.support.jobs import wait_for_job
from tests.support.worker import WorkerProcess


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


@pytest.mark.django_db(transaction=True)
def test_a_django_free_producer_using_celerys_defaults_is_served(
    live_worker: WorkerProcess, celery_app: Celery, tmp_path: Path, admin_client: Client
) -> None:
    """Another service's `send_task` with no queue and no configuration: queue `celery`."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["django"] = None  # this producer cannot import Django at all
        from celery import Celery
        app = Celery(broker={celery_app.conf.broker_url!r})
        print(app.send_task("tasks.demo.add", (40, 2)).id)
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    task_id = completed.stdout.strip()
    job = wait_for_job(task_id)
    assert (job.status, job.result, job.queue) == (JobStatus.SUCCESS, 42, "celery")
    listed = admin_client.get("/admin/tasklayer/job/", {"q": task_id})
    assert listed.status_code == 200
    assert task_id in listed.content.decode()


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
