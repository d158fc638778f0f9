from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The README walk-through: a page whose button starts a job and shows its progress."""

    name = "demo"
    default_auto_field = "django.db.models.BigAutoField"
