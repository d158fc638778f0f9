"""App config: connects the Celery signal receivers once Django is ready."""

from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"
    # Not "tasks": that is a common app name, and Django refuses two apps with one label.
    label = "tasklayer"
    verbose_name = "Task layer"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from celery import current_app

        # checks registers `manage.py check`'s; retention's beat task is registered by
        # the import.
        from tasks import (  # noqa: F401
            cancellation,
            checks,
            outbox,
            receivers,
            retention,
            uniqueness,
            worker_steps,
        )

        receivers.connect()
        worker_steps.connect(current_app)
        cancellation.connect(current_app)
        outbox.connect(current_app)
        uniqueness.connect(current_app)
        # Finalized now, every task decorated from here on is built at once, so a bad
        # task option (tasks.options) fails at import time, not at the first .delay().
        current_app.finalize(auto=True)
