"""The reading app: studies, readers, sessions, calls, scoring and the platform's plumbing."""

from django.apps import AppConfig


class ReaderStudyConfig(AppConfig):
    name = "readerstudy"
    verbose_name = "Reader studies"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the worker start-up hooks)
