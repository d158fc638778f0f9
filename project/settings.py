"""Settings, all read from the environment (12-factor).

Development (`make run`) sets DEBUG=1; anything else is treated as production and must
provide SECRET_KEY and ALLOWED_HOSTS. `manage.py check --deploy` is clean with DEBUG off.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "dev-only-insecure-key-never-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_celery_results",
    "django_celery_beat",
    "tasks",
    "dashboard",
    "demo",
    "plaincelery",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Jobs enqueued while handling a request carry its X-Request-ID.
    "tasks.correlation.CorrelationIdMiddleware",
]

ROOT_URLCONF = "project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "project.wsgi.application"

# --- Database -------------------------------------------------------------------------
VAR_DIR.mkdir(exist_ok=True)
DATABASES = {
    # An empty DATABASE_URL means unset (dj_database_url.config would return {}).
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
# The layer's backends are Django's own plus one thing: `.delay()` inside a transaction
# writes its rows with the COMMIT, in the same round trip (tasks.publish.with_commit).
_LAYER_BACKENDS = {
    "django.db.backends.postgresql": "tasks.publish.db_backends.postgresql",
    "django.db.backends.sqlite3": "tasks.publish.db_backends.sqlite3",
}
_ENGINE = DATABASES["default"]["ENGINE"]
DATABASES["default"]["ENGINE"] = _LAYER_BACKENDS.get(_ENGINE, _ENGINE)
if _ENGINE == "django.db.backends.sqlite3":
    # Web, worker and beat are separate processes writing one file: WAL lets readers
    # proceed during a write, IMMEDIATE takes the write lock at BEGIN (no deadlocking
    # upgrade from a read lock), and the timeout makes writers queue instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # Tests run real worker processes, which must open the same file as the test run.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

LOGIN_URL = "admin:login"

# --- Security (production unless DEBUG) -------------------------------------------------
# Cookies only over HTTPS outside DEBUG. SECURE_COOKIES=0 is for a local plain-http trial
# of the production setup (docker compose without a TLS proxy), never for production.
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    # TLS usually ends at a proxy in front of gunicorn; it must set X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Orchestrators and load balancers probe the container itself, over plain HTTP: a
    # redirect to https would read as a failed probe. /metrics keeps the redirect (its
    # token must not travel in clear outside the private network).
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)

# --- Celery ----------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL
CELERY_TIMEZONE = TIME_ZONE
# Everything else the layer needs from Celery (JSON only, late acks, the result
# backend, the worker consumer, the Redis transport, beat's housekeeping entries) is
# filled in by the app class, tasks.celery_app.TaskLayerCelery, wherever this file is silent:
# see tasks/celery_defaults.py.

# This deployment's own default queue. Producers that use Celery's defaults send to
# `celery`, which the workers consume too (TASKS_QUEUES, Procfile.dev, docker-compose).
CELERY_TASK_DEFAULT_QUEUE = "default"
# The queues workers consume (make run, docker-compose); the admin filters by them.
TASKS_QUEUES = env_list("TASKS_QUEUES", ["high", "default", "low", "celery"])
# Extra task modules for workers to import (comma-separated), beyond installed apps.
CELERY_IMPORTS = env_list("CELERY_IMPORTS", [])

# The layer's default prefetch is 1: a crash strands as few jobs as possible and long
# jobs do not block short ones. A deployment of many short jobs may raise it (more
# messages held per worker, fewer waits for the broker between them).
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("CELERY_WORKER_PREFETCH_MULTIPLIER", 1)

# Time limits are per task (`@shared_task(time_limit=..., soft_time_limit=...)`); a
# global default is opt-in from the environment: with one, the prefork main process
# keeps a cancelled timer per finished task until the limit would have expired, so its
# memory grows with throughput x limit (about 20 MiB per 35,000 tasks at 30 minutes)
# and Celery's bottleneck process spends more CPU.
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 0) or None
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 0) or None
# The longest a task may run, for the visibility timeout below; set per-task limits
# (or the defaults above) no higher than this.
TASKS_MAX_RUNTIME = env_int("TASKS_MAX_RUNTIME", 60 * 60)

# Redis has no real acks: kombu keeps a delivered-but-unacked message in a hash and
# re-queues it once `visibility_timeout` seconds pass. A task still running (time limit)
# or still waiting for its ETA (countdown, retry backoff) when that happens runs twice.
# So the timeout must exceed the longest run (TASKS_MAX_RUNTIME, or the hard time limit)
# and the furthest ETA a message on the broker can carry. Our tasks never give the broker
# an ETA further than TASKS_HOLD_AFTER + TASKS_HOLD_LEAD (see "Publishing path" below:
# later jobs wait in the outbox table); TASKS_MAX_COUNTDOWN covers messages published by
# code that bypasses the layer (another app's send_task, plain Celery producers).
# 12 h leaves a margin over all of them.
TASKS_MAX_COUNTDOWN = env_int("TASKS_MAX_COUNTDOWN", 6 * 60 * 60)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # How often a worker looks for messages whose worker died (Redis): kombu's
    # defaults, overridable where the visibility timeout is lowered (tests).
    "unacked_restore_interval": env_int("CELERY_UNACKED_RESTORE_INTERVAL", 10),
    "unacked_restore_throttle": env_int("CELERY_UNACKED_RESTORE_THROTTLE", 10),
    "visibility_timeout": env_int(
        "CELERY_VISIBILITY_TIMEOUT",
        max(
            12 * 60 * 60,
            (CELERY_TASK_TIME_LIMIT or 0) * 2,
            TASKS_MAX_RUNTIME * 2,
            TASKS_MAX_COUNTDOWN * 2,
        ),
    ),
}

# --- Retries and dead letters --------------------------------------------------------
# A job that fails for good (retries exhausted, an error not retried, a worker lost too
# often, an unknown task) is parked in the `dead_letter` queue and marked on its row;
# per task: `@shared_task(dead_letter=False)`. See tasks/runtime/dead_letter_queue.py.
TASKS_DEAD_LETTER = env_bool("TASKS_DEAD_LETTER", True)
# Set when RabbitMQ has the dead-letter policy on the task queues (README): workers
# then reject failed messages and the broker moves them to `dead_letter` itself.
# Otherwise (Redis, or RabbitMQ without the policy) failed messages are acknowledged
# and the layer publishes a copy to `dead_letter`.
TASKS_RABBITMQ_DEAD_LETTER_POLICY = env_bool("TASKS_RABBITMQ_DEAD_LETTER_POLICY", False)

# Tests and debugging can ask for every job event to be written before the call returns.
TASKS_RECORD_SYNCHRONOUSLY = env_bool("TASKS_RECORD_SYNCHRONOUSLY", False)

# The layer adds its housekeeping (pruning, the outbox's reconciler) to beat's
# schedule; the DatabaseScheduler installs it in django-celery-beat's tables, where it
# is editable in the admin.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# Beat's housekeeping that runs every few seconds gets no Job row unless it fails.
TASKS_UNTRACKED_TASKS = ["tasks.outbox.publish_due"]

# Days to keep finished jobs, per status; dead letters are kept longer.
TASKS_RETENTION_DAYS = {
    "SUCCESS": env_int("TASKS_RETAIN_SUCCESS_DAYS", 7),
    "FAILURE": env_int("TASKS_RETAIN_FAILURE_DAYS", 30),
    "REVOKED": env_int("TASKS_RETAIN_REVOKED_DAYS", 30),
    "DEAD_LETTER": env_int("TASKS_RETAIN_DEAD_LETTER_DAYS", 90),
}

# --- Cancellation ---
# Cancellations live in the database (Job.cancel_requested_at). Each worker loads the
# ids of unfinished cancelled jobs into Celery's in-memory revoked set when it starts
# and again every this many seconds, so a job cancelled while no worker listened (or
# while its worker restarted) is still discarded when it is delivered. The query uses a
# partial index and returns only unfinished cancellations: cheap at any table size.
TASKS_CANCEL_REFRESH_SECONDS = env_int("TASKS_CANCEL_REFRESH_SECONDS", 10)
# A hard cancel kills the pool process running the job; the worker starts a new one.
# SIGKILL because it cannot be caught: Celery's default signal is SIGTERM, which task
# code may handle, and with REMAP_SIGTERM=SIGQUIT it becomes SIGQUIT, which pool
# children ignore (celery/concurrency/prefork.py), so the job would run on.
TASKS_CANCEL_HARD_SIGNAL = os.environ.get("TASKS_CANCEL_HARD_SIGNAL", "SIGKILL")

# --- Publishing path: outbox, far-future holds, queue limits ---------------------------
# (tasks/publish/: outbox.py, backpressure.py, uniqueness.py explain the mechanisms.)
# A job whose ETA (countdown, eta, retry backoff) is further away than TASKS_HOLD_AFTER
# seconds is not given to the broker yet: it waits as an OutboxMessage and the
# reconciler publishes it TASKS_HOLD_LEAD seconds before its ETA (the message keeps the
# original ETA). The broker then never holds an ETA longer than the visibility timeout,
# which would make kombu deliver it again every timeout (celery #2599, #3270, #4766).
# The lead must cover the reconciler's interval (beat, 10 s).
TASKS_HOLD_AFTER = env_int("TASKS_HOLD_AFTER", 15 * 60)
TASKS_HOLD_LEAD = env_int("TASKS_HOLD_LEAD", 30)
# `manage.py check` (tasklayer.E005) fails when they reach the visibility timeout.
# How long a claim on an outbox message lasts. The commit hook's own publish is bounded
# (TASKS_PUBLISH_RETRY_POLICY, TASKS_BROKER_CONNECT_TIMEOUT) well below it; a process
# that dies mid-publish leaves its messages to a reconciler once the lease runs out.
TASKS_OUTBOX_LEASE = env_int("TASKS_OUTBOX_LEASE", 60)
# `.delay()` inside a transaction writes only the job's row; every worker's relay
# (tasks/publish/relay.py) looks for such rows this often (seconds) and publishes them. It is
# the longest a committed job waits for the broker while a worker runs; an idle look
# is one query on an index that is empty in a steady state, so polling this often
# costs the recorder process under a hundredth of a core.
TASKS_RELAY_POLL_INTERVAL = float(os.environ.get("TASKS_RELAY_POLL_INTERVAL", "0.1"))
# The recorder process (tasks/record/recorder.py) lowers its CPU priority by this much (nice).
# Its work can wait (events stay on the Redis stream until written), the worker's main
# process cannot: it is Celery's serial bottleneck, and on a busy machine it otherwise
# waits for the CPU behind the recorder and its database work. 0 keeps the default.
TASKS_RECORDER_NICE = env_int("TASKS_RECORDER_NICE", 10)
# Publishing from the commit hook and the reconciler gives up after this, so a request
# never hangs on a dead broker (Celery's default retries ~0.6 s on a refused
# connection; an unreachable host would block in connect() without the timeout below).
TASKS_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.25,
    "interval_max": 0.5,
}
TASKS_BROKER_CONNECT_TIMEOUT = env_int("TASKS_BROKER_CONNECT_TIMEOUT", 2)
CELERY_BROKER_TRANSPORT_OPTIONS.setdefault("socket_connect_timeout", TASKS_BROKER_CONNECT_TIMEOUT)

# Backpressure: the most messages a queue may hold before `.delay()` raises QueueFull,
# e.g. TASKS_QUEUE_MAX_LENGTH="default=10000,low=100000"; a queue not listed is
# unlimited. Depths are cached per process for TASKS_QUEUE_DEPTH_CACHE seconds (one
# broker round trip per queue per interval, not per publish), so a burst may overshoot
# the limit by what one process publishes in that time.
TASKS_QUEUE_MAX_LENGTH = {
    queue: int(limit)
    for queue, _, limit in (item.partition("=") for item in env_list("TASKS_QUEUE_MAX_LENGTH", []))
}
TASKS_QUEUE_DEPTH_CACHE = float(os.environ.get("TASKS_QUEUE_DEPTH_CACHE") or 1.0)

# --- Flower ------------------------------------------------------------------------------
# "user:password"; `make run` generates one, docker-compose requires one. Flower is never
# started without it.
FLOWER_BASIC_AUTH = os.environ.get("FLOWER_BASIC_AUTH", "")
# The dashboard's link to Flower (`make run` sets FLOWER_URL; empty: no link).
TASKS_FLOWER_URL = os.environ.get("FLOWER_URL", "")
# Workers and web processes must agree on it (a worker is lost after three missed beats).
TASKS_HEARTBEAT_INTERVAL = float(os.environ.get("TASKS_HEARTBEAT_INTERVAL", "5"))
TASKS_BROKER_WATCH_INTERVAL = float(os.environ.get("TASKS_BROKER_WATCH_INTERVAL", "2"))
TASKS_BROKER_WATCH_FOLLOW_UP = float(os.environ.get("TASKS_BROKER_WATCH_FOLLOW_UP", "15"))
# The dashboard: the most jobs one bulk action may touch, rows per CSV export, and the
# argument keys masked on every page (docs/settings.md; unset: the layer's defaults).
if os.environ.get("TASKS_BULK_ACTION_LIMIT"):
    TASKS_BULK_ACTION_LIMIT = env_int("TASKS_BULK_ACTION_LIMIT", 10_000)
if os.environ.get("TASKS_EXPORT_LIMIT"):
    TASKS_EXPORT_LIMIT = env_int("TASKS_EXPORT_LIMIT", 100_000)
if os.environ.get("TASKS_REDACT_KEYS"):
    TASKS_REDACT_KEYS = env_list("TASKS_REDACT_KEYS", [])

# --- Probes: /metrics and /readyz (dashboard/probes/, docs/metrics.md) -------------------
# The bearer token Prometheus sends to scrape /metrics. Unset in production: /metrics
# refuses every caller but a logged-in staff user (DEBUG also opens it to localhost).
TASKS_METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
# What /readyz requires (unset: the layer's defaults, docs/settings.md): a live worker
# for each of these queues, and every queue under a backlog and a time to drain.
if os.environ.get("TASKS_READY_QUEUES"):
    TASKS_READY_QUEUES = env_list("TASKS_READY_QUEUES", [])
if os.environ.get("TASKS_READY_MAX_BACKLOG"):
    TASKS_READY_MAX_BACKLOG = env_int("TASKS_READY_MAX_BACKLOG", 10_000)
if os.environ.get("TASKS_READY_MAX_DRAIN_SECONDS"):
    TASKS_READY_MAX_DRAIN_SECONDS = env_int("TASKS_READY_MAX_DRAIN_SECONDS", 900)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
