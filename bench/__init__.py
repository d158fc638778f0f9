"""`make bench`: this task layer measured against plain Celery, in one run, on one Redis.

`python -m bench.run --help` for the options; docs/benchmarks.md for the method and the
figures. Nothing is imported here on purpose: the producer and worker subprocesses
import only the side they measure (`bench.bare_app`, or Django and the project).
"""
