from django.apps import AppConfig


class PlainCeleryConfig(AppConfig):
    """An app written for plain Celery that imports nothing from `tasks`.

    It stands for the existing code a team brings along: the layer must track its jobs
    without any change to it.
    """

    name = "plaincelery"
    default_auto_field = "django.db.models.BigAutoField"
