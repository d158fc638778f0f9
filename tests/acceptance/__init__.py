"""Acceptance: the built distribution, installed into a project that is not this one.

Nothing here imports the repository's `project/`: the wheel is built from the working
tree, installed into a fresh virtualenv, and a new `django-admin startproject` adopts
it by the README's five steps, run by its own `manage.py` and `celery` processes.
"""
