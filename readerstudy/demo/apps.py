"""The demo: the pipeline that builds a ready demo study, and ``manage.py demo``. It sits above
every other app."""

from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "readerstudy.demo"
    label = "demo"
    verbose_name = "Demo"
