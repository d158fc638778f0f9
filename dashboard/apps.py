from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """Operator-facing pages: the job admin now, the ops dashboard next."""

    name = "dashboard"
    default_auto_field = "django.db.models.BigAutoField"
