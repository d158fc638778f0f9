"""Django settings for the bare side of the in-transaction enqueue: no task layer.

The bare producer's transaction must be the same as the layer's (same database, same
SQLite pragmas, one application row per transaction), with nothing of this project
installed: Django's own backend, no `tasks` app, no signal receivers. Plain Celery
publishes on commit, as Celery's `delay_on_commit` does.
"""

from __future__ import annotations

import os

import dj_database_url

SECRET_KEY = "bench-only-not-a-secret"  # noqa: S105 (never served)
USE_TZ = True
INSTALLED_APPS: list[str] = []
DATABASES = {"default": dj_database_url.config(env="DATABASE_URL", conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # As project.settings configures SQLite for the layer.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
if not os.environ.get("DATABASE_URL"):
    raise RuntimeError("bench.bare_django_settings needs DATABASE_URL (bench.run sets it)")
