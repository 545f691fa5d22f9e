"""The reading app: studies, readers, sessions, trials, calls, dry runs, the quiz, the reading
pages and the reader API."""

from django.apps import AppConfig


class ReadingConfig(AppConfig):
    name = "readerstudy.reading"
    # The label it had as the project's only app: its tables, migrations and content types.
    label = "readerstudy"
    verbose_name = "Reader studies"

    def ready(self) -> None:
        from . import signals  # noqa: F401 (connects the receivers)
