"""The results app: scoring, statistics, exports, plots and the machine-observer job."""

from django.apps import AppConfig


class ResultsConfig(AppConfig):
    name = "readerstudy.results"
    label = "results"
    verbose_name = "Results"
