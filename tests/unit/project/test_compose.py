"""docker-compose.yml: the services, their commands, and the environment wiring."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
APP_SERVICES = ["migrate", "web", "worker", "beat", "flower"]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def command(service: dict[str, Any]) -> str:
    value = service["command"]
    return " ".join(value) if isinstance(value, list) else value


def test_every_service_of_the_design_is_there(compose: dict[str, Any]) -> None:
    assert {"postgres", "redis", "web", "worker", "beat", "flower"} <= set(compose["services"])


def test_app_services_share_one_image_and_the_same_environment(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert services[name]["build"] == "."
        assert env["DEBUG"] == "0"
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert env["DATABASE_URL"].startswith("postgres://tasks:")
        assert env["DATABASE_URL"].endswith("@postgres:5432/tasks")
        # Secrets must be supplied, never defaulted.
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")
        assert "${POSTGRES_PASSWORD:?" in env["DATABASE_URL"]


def test_commands_run_the_project_processes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert command(services["web"]).startswith("gunicorn project.wsgi:application")
    assert command(services["worker"]).startswith("celery -A project worker")
    assert command(services["beat"]).startswith("celery -A project beat")
    assert "django_celery_beat.schedulers:DatabaseScheduler" in command(services["beat"])
    assert command(services["flower"]).startswith("celery -A project flower")
    assert command(services["migrate"]) == "python manage.py migrate --no-input"
    assert importlib.import_module("project.wsgi").application is not None


def test_app_services_wait_for_healthy_backends_and_migrations(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "healthcheck" in services["postgres"]
    assert "healthcheck" in services["redis"]
    for name in ["web", "worker", "beat", "flower"]:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_flower_cannot_start_without_credentials(compose: dict[str, Any]) -> None:
    flower = compose["services"]["flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert all(port.startswith("127.0.0.1:") for port in flower["ports"])


def test_the_image_installs_the_pinned_requirements_and_serves_static_files() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install -r requirements.txt" in dockerfile
    assert "collectstatic" in dockerfile
    assert "USER app" in dockerfile
