"""The names the bare Celery side and the bench agree on, without the bare Celery app.

`bench.run` needs these; importing `bench.bare_app` for them would also create its
Celery app, which becomes the process's current app: in the test process that made
`@shared_task` bind to it, and the task layer's own options failed there.
"""

BROKER_URL_ENV = "BENCH_BROKER_URL"
QUEUE = "bench"
COUNTER_KEY = "bench:done"
