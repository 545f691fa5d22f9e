"""The Celery app: configuration from Django settings (CELERY_*), tasks found in every app."""

import os
from pathlib import Path

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "readerstudy.settings")

app = Celery("readerstudy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def ensure_local_folders() -> None:
    """Create the folders Celery writes to but will not create: kombu's filesystem transport
    fails on missing folders, and beat on a missing folder for its schedule file."""
    folders = [Path(app.conf.beat_schedule_filename).parent]
    if str(app.conf.broker_url or "").startswith("filesystem://"):
        options = app.conf.broker_transport_options or {}
        keys = ("data_folder_in", "data_folder_out", "control_folder", "processed_folder")
        folders += [Path(options[key]) for key in keys if key in options]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)


ensure_local_folders()
