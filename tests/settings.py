"""Test settings: production settings, served over plain HTTP by the test servers.

Everything else (JSON only, acks, the database from DATABASE_URL) is what production
runs. Worker subprocesses use `project.settings` itself.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-use-0123456789")
os.environ.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1,testserver")

from project.settings import *  # noqa: F403

# The test client and live server speak http://, so no redirect to https and cookies
# that a browser will send back over http.
SECURE_SSL_REDIRECT = False
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
# Hashing test users' passwords with the production hasher only slows the suite.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Static files straight from the apps; no collectstatic manifest in tests.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# This test process writes its (publisher-side) events at once: pytest-django only lets
# a test's own window touch the database, which a background flusher would miss. The
# worker subprocesses run project.settings: stream, recorder and batches, as in production.
TASKS_RECORD_SYNCHRONOUSLY = True
# Every dashboard request reads the database: a test writes rows and looks at once
# (tests/unit/dashboard/test_read_shared.py checks the sharing itself).
TASKS_DASHBOARD_SHARED_SECONDS = 0
# Nothing listens here: a test that publishes without the private Redis of the
# integration fixtures (tests/conftest.py) fails instead of reaching a shared Redis.
CELERY_BROKER_URL = "redis://127.0.0.1:9/0"
