"""The generator app: from uploaded volumes to a bank of real and synthetic images."""

from django.apps import AppConfig


class GeneratorConfig(AppConfig):
    name = "generator"
    verbose_name = "Generator and image bank"

    def ready(self) -> None:
        from pathlib import Path

        from django.conf import settings

        from . import signals  # noqa: F401 (connects the worker start-up hook)

        Path(settings.FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)  # Django spools uploads there
