"""Configuration that the product's guarantees depend on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from celery import Celery
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def test_json_is_the_only_accepted_content(celery_app: Celery) -> None:
    conf = celery_app.conf
    assert conf.task_serializer == "json"
    assert conf.result_serializer == "json"
    assert list(conf.accept_content) == ["json"]
    assert list(conf.result_accept_content) == ["json"]


def test_delivery_is_at_least_once(celery_app: Celery) -> None:
    conf = celery_app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1


def test_visibility_timeout_exceeds_time_limit_and_furthest_countdown() -> None:
    timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    assert timeout > (settings.CELERY_TASK_TIME_LIMIT or 0)
    assert timeout > settings.TASKS_MAX_RUNTIME
    assert timeout > settings.TASKS_MAX_COUNTDOWN


def test_results_go_to_django_celery_results(celery_app: Celery) -> None:
    from django_celery_results.backends.database import DatabaseBackend

    assert isinstance(celery_app.backend, DatabaseBackend)
    assert celery_app.conf.result_extended is True
    assert celery_app.conf.task_track_started is True


def test_every_task_is_a_tracked_task(celery_app: Celery) -> None:
    from plaincelery.tasks import word_count
    from tasks.task import TrackedTask

    assert isinstance(word_count, TrackedTask)


def _production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ["PATH"],
        "DEBUG": "0",
        "SECRET_KEY": "x" * 20 + "-production-like-secret-key-with-enough-entropy-0123456789",
        "ALLOWED_HOSTS": "tasks.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    env.update(extra)
    return env


def test_check_deploy_is_clean_in_production_settings(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=_production_env(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "no issues" in completed.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=_production_env(tmp_path, SECRET_KEY=""),
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode != 0
    assert "SECRET_KEY must be set" in completed.stderr


def test_flower_refuses_to_start_without_authentication(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "project", "flower", "--port=0"],
        cwd=ROOT,
        env={**_production_env(tmp_path), "DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode != 0
    assert "Refusing to start Flower without authentication" in completed.stderr
