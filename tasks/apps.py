"""App config: connects the Celery signal receivers once Django is ready."""

from celery import current_app
from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"
    # Not "tasks": that is a common app name, and Django refuses two apps with one label.
    label = "tasklayer"
    verbose_name = "Task layer"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Here, not at the top: these modules import models, which exist only once the
        # app registry is ready. Some are imported for what importing does: checks
        # registers `manage.py check`'s, retention and reconciler their beat tasks.
        from tasks import (
            checks,  # noqa: F401
            receivers,
        )
        from tasks.operations import retention  # noqa: F401
        from tasks.publish import reconciler, uniqueness
        from tasks.runtime import cancellation, worker_steps

        receivers.connect()
        worker_steps.connect(current_app)
        cancellation.connect(current_app)
        reconciler.connect(current_app)
        uniqueness.connect(current_app)
        # Finalized now, every task decorated from here on is built at once, so a bad
        # task option (tasks.options) fails at import time, not at the first .delay().
        current_app.finalize(auto=True)
