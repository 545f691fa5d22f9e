"""SynthRead's Django project package and its reading app.

settings, urls, wsgi and the Celery app (``celery.py``) live here beside the reading app:
roles (``roles.py``), the job lease every long job uses (``jobs.py``), worker heartbeats
(``workers.py``), health checks (``health.py``), views, API and tasks.
"""

from .celery import app as celery_app

__all__ = ("celery_app",)
