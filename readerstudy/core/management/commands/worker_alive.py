"""Exit 0 when a Celery worker of this machine beat lately: docker-compose's worker health check."""

import socket

from django.core.management.base import BaseCommand, CommandError

from readerstudy.core.workers import workers_alive_on


class Command(BaseCommand):
    help = "Succeed when a worker on this host (or --host) wrote its heartbeat lately; fail otherwise."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=socket.gethostname(), help="the host name in the worker's node name")

    def handle(self, *args, host: str, **options) -> None:
        alive = workers_alive_on(host=host)
        if not alive:
            raise CommandError(f"No worker on {host} has written its heartbeat lately.")
        self.stdout.write(", ".join(worker.name for worker in alive))
