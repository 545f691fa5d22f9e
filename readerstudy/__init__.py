"""SynthRead's Django project package: settings, urls, wsgi and the Celery app (``celery.py``).

The apps live beside it, one per domain, imports running one way (results → reading →
generator → core; the demo and the URLconf above them all):

- ``readerstudy.core``: job leases, worker heartbeats, health, roles and accounts, probes,
  command progress-following, the application errors; imports no domain app.
- ``readerstudy.reading`` (app label ``readerstudy``): studies, readers, sessions, trials, dry
  runs, the quiz, the reading pages and the reader API.
- ``readerstudy.results``: scoring, statistics, exports, plots, the machine-observer job.
- ``readerstudy.demo``: the demo pipeline and ``manage.py demo``.
- ``generator`` (beside this package): volumes, training jobs, the image bank.
"""

from .celery import app as celery_app

__all__ = ("celery_app",)
