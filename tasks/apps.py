"""App config: connects the Celery signal receivers once Django is ready."""

from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"
    verbose_name = "Task layer"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tasks import receivers

        receivers.connect()
