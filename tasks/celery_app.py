"""The layer's Celery app class: `from tasks.celery_app import TaskLayerCelery as Celery`.

The one line an adopter changes in their `celery.py`. It makes every task (a plain
`@shared_task` included) a `tasks.task.TrackedTask`, fills in the Celery settings the
layer needs wherever the user left them unset (tasks.celery_defaults), and checks task
options when a task is decorated (tasks.options).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from django.conf import settings

from tasks import celery_defaults
from tasks import options as task_options

TASK_CLASS = "tasks.task:TrackedTask"


class TaskLayerCelery(Celery):
    _tasks: Any  # Celery's task registry, before finalize; not in celery-types' stub

    def __init__(self, main: str | None = None, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("task_cls", TASK_CLASS)
        super().__init__(main, *args, **kwargs)
        self.on_after_configure.connect(self._install_layer_defaults, weak=False)

    def _install_layer_defaults(self, sender: Any = None, source: Any = None, **_: Any) -> None:
        # Sent once the user's configuration is loaded; `source` is Celery's Settings.
        installed_apps = list(settings.INSTALLED_APPS) if settings.configured else []
        celery_defaults.install(source if source is not None else self.conf, installed_apps)

    # The ignore[override] below: the stub spells out the options Celery takes as **options.
    def _task_from_fun(  # type: ignore[override]
        self, fun: Any, name: Any = None, base: Any = None, bind: bool = False, **options: Any
    ) -> Any:
        # The one place every `@shared_task` / `@app.task` passes through: options are
        # checked and translated before Celery builds the task class.
        if (name or self.gen_task_name(fun.__name__, fun.__module__)) not in self._tasks:
            options = task_options.prepare(
                fun, options, soft_limit_default=self.conf.task_soft_time_limit
            )
        return super()._task_from_fun(fun, name, base, bind, **options)
