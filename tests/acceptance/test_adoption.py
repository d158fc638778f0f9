"""A new Django + Celery project adopts the built wheel by the README's five steps.

The project is what `django-admin startproject proj` and Celery's "First steps with
Django" guide give (proj/celery.py and proj/__init__.py as the guide has them), plus an
app `shop` with a plain `@shared_task` and a view that calls `.delay()` inside
`transaction.atomic`. The steps are read from README.md (tests/acceptance/adoption_steps.py).
Its worker is started as the README says, without `-Q`: whatever it consumes, it must
serve the queue plain Celery publishes to.
"""

from __future__ import annotations

import uuid
import zipfile
from pathlib import Path

import pytest

from devstack.redis_server import RedisServer
from tests.acceptance.adoption_steps import AdoptionSteps
from tests.acceptance.conftest import wheel_metadata
from tests.acceptance.foreign_project import ForeignProject, ForeignWorker, Virtualenv

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(600)]

# A Redis database of its own on the session's server: the session worker's queues,
# streams and control messages stay apart from this project's.
ADOPTER_REDIS_DB = 9
JOB_TIMEOUT = 60

# Celery's examples/django/proj/celery.py, which "First steps with Django" includes.
GUIDE_CELERY_PY = """\
import os

from celery import Celery

# Set the default Django settings module for the 'celery' program.
os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'proj.settings')

app = Celery('proj')

# Using a string here means the worker doesn't have to serialize
# the configuration object to child processes.
# - namespace='CELERY' means all celery-related configuration keys
#   should have a `CELERY_` prefix.
app.config_from_object('django.conf:settings', namespace='CELERY')

# Load task modules from all registered Django apps.
app.autodiscover_tasks()


@app.task(bind=True, ignore_result=True)
def debug_task(self):
    print(f'Request: {self.request!r}')
"""

# Celery's examples/django/proj/__init__.py.
GUIDE_INIT_PY = """\
# This will make sure the app is always imported when
# Django starts so that shared_task will use this app.
from .celery import app as celery_app

__all__ = ('celery_app',)
"""

SHOP_TASKS = """
from celery import shared_task


@shared_task
def add(x, y):
    return x + y
"""

SHOP_VIEWS = """
from django.db import transaction
from django.http import JsonResponse

from .tasks import add


def checkout(request):
    with transaction.atomic():
        result = add.delay(2, 3)
    return JsonResponse({"job": result.id})
"""

SHOP_URLS = """
from shop.views import checkout

urlpatterns += [path("checkout/", checkout)]
"""

# Runs in the adopter's `manage.py shell -c`: a request to the view, the job's row
# until SUCCESS, the result through Celery's API, the admin's job list as a superuser.
CHECK_JOB = f"""
import time

import tasks
from celery.result import AsyncResult
from django.contrib.auth import get_user_model
from django.test import Client
from shop.tasks import add
from tasks.task import TrackedTask
from tasks.models import Job

# A failing view or admin page answers 500 and logs its traceback (DEBUG is on).
client = Client(HTTP_HOST="localhost", raise_request_exception=False)
response = client.get("/checkout/")
task_id = response.json()["job"] if response.status_code == 200 else None
deadline = time.monotonic() + {JOB_TIMEOUT}
job = None
while task_id and time.monotonic() < deadline:
    job = (
        Job.objects.filter(task_id=task_id)
        .values("status", "name", "queue", "error", "worker", "attempts")
        .first()
    )
    if job and job["status"] == "SUCCESS":
        break
    time.sleep(0.2)
result = result_error = None
try:
    result = AsyncResult(task_id).get(timeout=10) if task_id else None
except Exception as exc:
    result_error = repr(exc)

admin = get_user_model().objects.create_superuser("admin", "admin@example.com", "unused-pw")
client.force_login(admin)
page = client.get("/admin/tasklayer/job/")
dashboard = client.get("/dashboard/jobs/", {{"q": "task:shop.tasks.add"}})
healthz = Client(HTTP_HOST="localhost", raise_request_exception=False).get("/healthz")
metrics = client.get("/metrics")  # a staff session may read it, as a scraper's token may
schedules = client.get("/dashboard/schedules/")  # django-celery-beat is not installed here
report({{
    "layer_module": tasks.__file__,
    "task_is_tracked": isinstance(add, TrackedTask),
    "view_status": response.status_code,
    "task_id": task_id,
    "job": job,
    "result": result,
    "result_error": result_error,
    "admin_status": page.status_code,
    "admin_lists_job": bool(task_id) and task_id in page.content.decode(),
    "dashboard_status": dashboard.status_code,
    "dashboard_lists_job": bool(task_id) and task_id in dashboard.content.decode(),
    "healthz_status": healthz.status_code,
    "metrics_status": metrics.status_code,
    "metrics_count_the_job": 'task="shop.tasks.add"' in metrics.content.decode(),
    "schedules_status": schedules.status_code,
}})
"""


def adopter_redis_url(redis_server: RedisServer) -> str:
    return f"{redis_server.url.rsplit('/', 1)[0]}/{ADOPTER_REDIS_DB}"


def celery_project(parent: Path, venv: Virtualenv, logs: Path, broker_url: str) -> ForeignProject:
    """A project as Celery's guide leaves it, before the layer: checked to work as is."""
    project = ForeignProject.start(parent, "proj", venv, logs)
    project.write("proj/celery.py", GUIDE_CELERY_PY)
    project.write("proj/__init__.py", GUIDE_INIT_PY)
    project.append(project.settings_py, f"CELERY_BROKER_URL = {broker_url!r}")
    return project


def adopt(project: ForeignProject, adoption: AdoptionSteps) -> None:
    """README steps 2 to 5 (step 1 made the virtualenv)."""
    project.append(project.settings_py, adoption.settings_line)
    project.replace_once(project.celery_py, *adoption.celery_import)
    project.run(adoption.migrate, log="migrate")
    # startproject's urls.py imports `path` but not `include`.
    project.append(
        project.root / "proj" / "urls.py", "from django.urls import include\n" + adoption.urls_line
    )


def test_the_wheel_holds_the_layers_apps_and_nothing_else(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    metadata = wheel_metadata(wheel)
    dist_info = f"{metadata['Name'].replace('-', '_')}-{metadata['Version']}.dist-info"
    assert {name.split("/", 1)[0] for name in names} == {"tasks", "dashboard", dist_info}
    for expected in (
        "tasks/migrations/0001_initial.py",
        "dashboard/templates/dashboard/base.html",
        "dashboard/static/dashboard/vendor/htmx.min.js",
        "dashboard/static/dashboard/vendor/chart.umd.min.js",
        "tasks/py.typed",
        "dashboard/py.typed",
        "tasks/publish/db_backends/postgresql/base.py",
        f"{dist_info}/licenses/LICENSE",
    ):
        assert expected in names


def test_a_new_project_adopts_the_layer_by_the_readme_and_its_job_succeeds(
    adopter_venv: Virtualenv,
    adoption: AdoptionSteps,
    redis_server: RedisServer,
    tmp_path: Path,
    acceptance_logs: Path,
) -> None:
    logs = acceptance_logs / "new-project"
    project = celery_project(tmp_path, adopter_venv, logs, adopter_redis_url(redis_server))
    project.manage("startapp", "shop", log="startapp")
    project.write("shop/tasks.py", SHOP_TASKS)
    project.write("shop/views.py", SHOP_VIEWS)
    project.append(project.root / "proj" / "urls.py", SHOP_URLS.strip())
    project.append(project.settings_py, 'INSTALLED_APPS += ["shop"]')
    project.manage("check", log="check-before")

    adopt(project, adoption)
    # The steps are enough: nothing for the layer's own checks (tasks.checks) to flag.
    checked = project.manage("check", log="check-after")
    assert "no issues" in checked, checked

    worker = ForeignWorker(
        argv=adopter_venv.command(
            [*adoption.worker, "-c", "2", "-n", f"acceptance-{uuid.uuid4().hex[:8]}@%h"]
        ),
        project=project,
        log_path=logs / "worker.log",
    )
    try:
        worker.start()
        outcome = project.shell(CHECK_JOB, log="check-job", timeout=JOB_TIMEOUT + 60)
    finally:
        worker.stop()

    assert str(outcome["layer_module"]).startswith(str(adopter_venv.path)), (
        f"the project imported the layer from {outcome['layer_module']}, not from its venv"
    )
    # Every way adoption falls short, at once (each has its own cause in the layer).
    shell_log, job = project.logs / "check-job.log", outcome["job"]
    problems = [
        problem
        for failed, problem in (
            (not outcome["task_is_tracked"], "shop.tasks.add is not a TrackedTask after step 3"),
            (outcome["view_status"] != 200, f"the view answered {outcome['view_status']}"),
            (not isinstance(job, dict), f"no Job row for task {outcome['task_id']}"),
            (
                isinstance(job, dict) and job["status"] != "SUCCESS",
                f"the job did not succeed within {JOB_TIMEOUT}s: {job}",
            ),
            (
                isinstance(job, dict) and (job["name"], job["attempts"]) != ("shop.tasks.add", 1),
                f"the job's row is not shop.tasks.add's first attempt: {job}",
            ),
            (
                (outcome["result"], outcome["result_error"]) != (5, None),
                f"AsyncResult(id).get() gave {outcome['result']!r}, "
                f"raised {outcome['result_error']}",
            ),
            (
                outcome["admin_status"] != 200,
                f"/admin/tasklayer/job/ answered {outcome['admin_status']}",
            ),
            (
                outcome["admin_status"] == 200 and not outcome["admin_lists_job"],
                "/admin/tasklayer/job/ does not list the job",
            ),
            (
                outcome["dashboard_status"] != 200,
                f"/dashboard/jobs/ answered {outcome['dashboard_status']}",
            ),
            (
                outcome["dashboard_status"] == 200 and not outcome["dashboard_lists_job"],
                "/dashboard/jobs/ does not list the job",
            ),
            (outcome["healthz_status"] != 200, f"/healthz answered {outcome['healthz_status']}"),
            (
                outcome["schedules_status"] != 200,
                f"/dashboard/schedules/ without django-celery-beat answered "
                f"{outcome['schedules_status']}",
            ),
            (outcome["metrics_status"] != 200, f"/metrics answered {outcome['metrics_status']}"),
            (
                outcome["metrics_status"] == 200 and not outcome["metrics_count_the_job"],
                "/metrics has no series for the job's task",
            ),
        )
        if failed
    ]
    assert not problems, "\n".join(problems) + f"\n(see {shell_log} and {worker.log_path})"


def test_a_project_with_its_own_tasks_app_adopts_the_layer(
    adopter_venv: Virtualenv,
    adoption: AdoptionSteps,
    redis_server: RedisServer,
    tmp_path: Path,
    acceptance_logs: Path,
) -> None:
    logs = acceptance_logs / "own-tasks-app"
    project = celery_project(tmp_path, adopter_venv, logs, adopter_redis_url(redis_server))
    # An app of the project's own, labelled "tasks" (its AppConfig sets no label).
    project.write("apps/__init__.py", "")
    project.write("apps/tasks/__init__.py", "")
    project.write(
        "apps/tasks/apps.py",
        """
        from django.apps import AppConfig


        class TasksConfig(AppConfig):
            default_auto_field = "django.db.models.BigAutoField"
            name = "apps.tasks"
        """,
    )
    project.write(
        "apps/tasks/models.py",
        """
        from django.db import models


        class Chore(models.Model):
            title = models.CharField(max_length=100)
        """,
    )
    project.write(
        "apps/tasks/tasks.py",
        """
        from celery import shared_task


        @shared_task
        def tidy(chore_id):
            return chore_id
        """,
    )
    project.append(project.settings_py, 'INSTALLED_APPS += ["apps.tasks"]')
    project.manage("makemigrations", "tasks", log="makemigrations")
    project.manage("migrate", log="migrate-before")

    adopt(project, adoption)
    # The steps are enough: nothing for the layer's own checks (tasks.checks) to flag.
    checked = project.manage("check", log="check-after")
    assert "no issues" in checked, checked

    outcome = project.shell(
        """
        from apps.tasks.models import Chore
        from django.apps import apps
        from proj.celery import app
        from tasks.task import TrackedTask
        from tasks.models import Job

        app.loader.import_default_modules()
        report({
            "labels": sorted(config.label for config in apps.get_app_configs()),
            "tables": [Chore._meta.db_table, Job._meta.db_table],
            "rows": [Chore.objects.count(), Job.objects.count()],
            "tidy_is_tracked": isinstance(app.tasks["apps.tasks.tasks.tidy"], TrackedTask),
        })
        """,
        log="check-apps",
    )
    assert {"tasks", "tasklayer", "dashboard"} <= set(outcome["labels"])  # type: ignore[arg-type]
    assert outcome["tables"] == ["tasks_chore", "tasklayer_job"]
    assert outcome["rows"] == [0, 0]
    assert outcome["tidy_is_tracked"] is True
