"""The layer's settings object (tasks.conf): defaults, overrides, checks, its cache.

Pure: no broker, no database, no worker.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from tasks.conf import LayerSettings, layer_settings, setting_name
from tasks.publish import backpressure, config, relay

DOCS = Path(__file__).resolve().parents[3] / "docs" / "settings.md"
FIELDS = [f.name for f in dataclasses.fields(LayerSettings)]


@pytest.fixture
def no_tasks_settings(settings: Any) -> None:
    """A project that sets none of the layer's settings (an adopter's)."""
    for name in dir(django_settings):
        if name.startswith("TASKS_"):
            delattr(settings, name)


@pytest.mark.usefixtures("no_tasks_settings")
def test_a_project_that_sets_nothing_gets_every_default() -> None:
    assert LayerSettings.from_django() == LayerSettings()


def test_the_defaults_are_the_documented_ones() -> None:
    defaults = LayerSettings()
    assert defaults.hold_after == 900.0
    assert defaults.hold_lead == 30.0
    assert defaults.outbox_lease == 60.0
    assert defaults.relay_poll_interval == 0.1
    assert dict(defaults.publish_retry_policy) == {
        "max_retries": 2,
        "interval_start": 0,
        "interval_step": 0.25,
        "interval_max": 0.5,
    }
    assert dict(defaults.queue_max_length) == {}
    assert defaults.queue_depth_cache == 1.0
    assert defaults.untracked_tasks == {"tasks.outbox.publish_due"}
    assert defaults.record_synchronously is False
    assert defaults.event_stream_url is None
    assert defaults.recorder_nice == 10
    assert defaults.dead_letter is True
    assert defaults.rabbitmq_dead_letter_policy is False
    assert defaults.cancel_refresh_seconds == 10.0
    assert defaults.cancel_hard_signal == "SIGKILL"
    assert dict(defaults.retention_days) == {
        "SUCCESS": 7,
        "FAILURE": 30,
        "REVOKED": 30,
        "DEAD_LETTER": 90,
    }
    assert defaults.queues == ("high", "default", "low", "celery")


def test_every_field_is_read_from_its_tasks_setting() -> None:
    assert setting_name("hold_after") == "TASKS_HOLD_AFTER"
    with override_settings(
        TASKS_HOLD_AFTER=120,
        TASKS_QUEUES=["fast", "slow"],
        TASKS_UNTRACKED_TASKS=["app.heartbeat"],
        TASKS_QUEUE_MAX_LENGTH={"slow": 5},
        TASKS_DEAD_LETTER=False,
        TASKS_CANCEL_HARD_SIGNAL="TERM",
        TASKS_EVENT_STREAM_URL="",
    ):
        config = layer_settings()
        assert config.hold_after == 120.0
        assert isinstance(config.hold_after, float)
        assert config.queues == ("fast", "slow")
        assert config.untracked_tasks == {"app.heartbeat"}
        assert dict(config.queue_max_length) == {"slow": 5}
        assert config.dead_letter is False
        assert config.cancel_hard_signal == "TERM"
        assert config.event_stream_url == ""
        assert config.outbox_lease == 60.0  # not set: its default


def test_retention_days_given_in_part_keep_the_other_defaults() -> None:
    with override_settings(TASKS_RETENTION_DAYS={"SUCCESS": 1}):
        assert dict(layer_settings().retention_days) == {
            "SUCCESS": 1,
            "FAILURE": 30,
            "REVOKED": 30,
            "DEAD_LETTER": 90,
        }


@pytest.mark.parametrize("value", [None, {}])
def test_an_empty_publish_retry_policy_means_the_default(value: Any) -> None:
    with override_settings(TASKS_PUBLISH_RETRY_POLICY=value):
        assert layer_settings().publish_retry_policy == LayerSettings().publish_retry_policy


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TASKS_OUTBOX_LEASE", -1),
        ("TASKS_OUTBOX_LEASE", 0),
        ("TASKS_OUTBOX_LEASE", "60"),
        ("TASKS_HOLD_AFTER", -5),
        ("TASKS_HOLD_LEAD", True),
        ("TASKS_RELAY_POLL_INTERVAL", 0),
        ("TASKS_CANCEL_REFRESH_SECONDS", float("nan")),
        ("TASKS_QUEUE_DEPTH_CACHE", float("inf")),
        ("TASKS_DEAD_LETTER", "no"),
        ("TASKS_RECORD_SYNCHRONOUSLY", 1),
        ("TASKS_QUEUES", "default"),
        ("TASKS_QUEUES", ["default", ""]),
        ("TASKS_UNTRACKED_TASKS", [1]),
        ("TASKS_QUEUE_MAX_LENGTH", {"default": -1}),
        ("TASKS_QUEUE_MAX_LENGTH", ["default"]),
        ("TASKS_RETENTION_DAYS", {"SUCCES": 7}),
        ("TASKS_RETENTION_DAYS", {"SUCCESS": -1}),
        ("TASKS_PUBLISH_RETRY_POLICY", {"retries": 2}),
        ("TASKS_CANCEL_HARD_SIGNAL", "SIGNOPE"),
        ("TASKS_CANCEL_HARD_SIGNAL", 9),
        ("TASKS_RECORDER_NICE", -1),
        ("TASKS_EVENT_STREAM_URL", 6379),
    ],
)
def test_an_invalid_value_is_refused_with_the_name_of_its_setting(name: str, value: Any) -> None:
    with override_settings(**{name: value}), pytest.raises(ImproperlyConfigured) as refused:
        layer_settings()
    assert str(refused.value).startswith(f"{name} must be ")
    assert repr(value) in str(refused.value)


def test_an_invalid_value_is_refused_when_built_directly_too() -> None:
    with pytest.raises(ImproperlyConfigured, match="TASKS_OUTBOX_LEASE"):
        LayerSettings(outbox_lease=-1)


def test_the_object_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        layer_settings().outbox_lease = 1  # type: ignore[misc]


def test_the_object_is_built_once_and_again_after_a_tasks_setting_changes() -> None:
    before = layer_settings()
    assert layer_settings() is before
    with override_settings(TASKS_OUTBOX_LEASE=5):
        assert layer_settings().outbox_lease == 5.0
    assert layer_settings().outbox_lease == before.outbox_lease


def test_a_change_to_another_setting_keeps_the_object() -> None:
    before = layer_settings()
    with override_settings(EMAIL_SUBJECT_PREFIX="[other] "):
        assert layer_settings() is before


def test_the_layers_own_caches_follow_an_override() -> None:
    with override_settings(
        TASKS_HOLD_AFTER=2,
        TASKS_OUTBOX_LEASE=7,
        TASKS_PUBLISH_RETRY_POLICY={"max_retries": 0},
        TASKS_QUEUE_MAX_LENGTH={"q": 3},
        TASKS_QUEUE_DEPTH_CACHE=0,
        TASKS_RELAY_POLL_INTERVAL=0.5,
    ):
        assert config.settings_now().hold_after == 2.0
        assert config.settings_now().lease == 7.0
        assert config.settings_now().retry_policy == {"max_retries": 0}
        assert dict(backpressure.limits()) == {"q": 3}
        assert relay.poll_interval() == 0.5
    assert config.settings_now().lease == layer_settings().outbox_lease
    assert dict(backpressure.limits()) == dict(layer_settings().queue_max_length)


def test_every_setting_is_in_the_documented_table() -> None:
    documented = set(re.findall(r"^\| `(TASKS_[A-Z_]+)`", DOCS.read_text(), re.MULTILINE))
    assert documented == {setting_name(name) for name in FIELDS}
