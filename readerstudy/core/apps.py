"""The platform app: job leases, worker heartbeats, health, roles and accounts, probes."""

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "readerstudy.core"
    label = "core"
    verbose_name = "Platform"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the worker start-up hooks)
