"""The Celery app: `celery -A project worker|beat|flower`.

Configuration lives in Django settings under the `CELERY_` namespace; this module only
creates the app. `task_cls` makes every task (plain `@shared_task` included) a
`tasks.task.TrackedTask`, so transactional enqueue and argument checks apply without
any change to user code; TaskLayerCelery checks task options when tasks are decorated.
"""

import os

from tasks.celery_app import TaskLayerCelery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")


app = TaskLayerCelery("project", task_cls="tasks.task:TrackedTask")
# CELERY_* Django settings, read once, lazily (project/celery_config.py says why).
app.config_from_object("project.celery_config:CELERY")
app.autodiscover_tasks()
