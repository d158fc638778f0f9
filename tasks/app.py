"""The Celery app class of the layer: Celery, plus checked task options.

`project/celery.py` instantiates it. Only `_task_from_fun`, the one place every
`@shared_task` / `@app.task` passes through, is extended: options are checked and
translated (tasks.options) before Celery builds the task class.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from tasks import options as task_options


class TaskLayerCelery(Celery):
    def _task_from_fun(
        self, fun: Any, name: Any = None, base: Any = None, bind: bool = False, **options: Any
    ) -> Any:
        if (name or self.gen_task_name(fun.__name__, fun.__module__)) not in self._tasks:
            options = task_options.prepare(
                fun, options, soft_limit_default=self.conf.task_soft_time_limit
            )
        return super()._task_from_fun(fun, name, base, bind, **options)
