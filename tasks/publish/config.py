"""The publishing settings, kept per process in the shape every enqueue reads them.

Read from tasks.conf once, and again after a `TASKS_*` setting changes (tests'
`override_settings`; tasks.publish.reconciler connects the reset).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tasks import conf
from tasks.conf import layer_settings


@dataclass(frozen=True, slots=True)
class Config:
    """The publishing settings (tasks.conf), kept per process in the shape the commit
    hook uses on every enqueue; reset when tests override them."""

    hold_after: float
    hold_lead: float
    lease: float
    retry_policy: Mapping[str, Any]


_config: Config | None = None


def settings_now() -> Config:
    global _config
    if _config is None:
        layer = layer_settings()
        _config = Config(
            hold_after=layer.hold_after,
            hold_lead=layer.hold_lead,
            lease=layer.outbox_lease,
            retry_policy=dict(layer.publish_retry_policy),
        )
    return _config


def reset(setting: str = "", **_: Any) -> None:
    global _config
    if not setting or setting.startswith(conf.PREFIX):
        _config = None
