"""The operator's pages: the job admin, the dashboard at /dashboard/, its read models."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class DashboardConfig(AppConfig):
    name = "dashboard"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(_read_only_group, dispatch_uid="dashboard.read_only_group")


def _read_only_group(sender: Any, **kwargs: Any) -> None:
    # After the job app's migrations, once auth has created its permissions (auth's
    # receiver was connected first, so it runs first for the same sender).
    if sender.label == "tasklayer":
        from dashboard.access import ensure_read_only_group

        ensure_read_only_group()
