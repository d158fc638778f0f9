"""Mount at the site's root with `path("", include("dashboard.probes.urls"))`: a platform's
probes and scrapers expect `/healthz`, `/readyz` and `/metrics` there."""

from __future__ import annotations

from django.urls import path

from dashboard.probes import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
]
