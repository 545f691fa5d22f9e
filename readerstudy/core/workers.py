"""Worker liveness: each Celery worker writes a heartbeat row from a thread of its own."""

import logging
import os
import threading
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from .models import WorkerHeartbeat

logger = logging.getLogger(__name__)

# A worker counts as alive while its last beat is younger than this many beat intervals.
BEATS_BEFORE_DEAD = 3


def worker_heartbeat_write(*, name: str, queues: str, pid: int, started_at) -> None:
    WorkerHeartbeat.objects.update_or_create(
        name=name, defaults={"queues": queues, "pid": pid, "started_at": started_at, "last_seen": timezone.now()}
    )


def workers_alive() -> list[WorkerHeartbeat]:
    horizon = timezone.now() - timedelta(seconds=BEATS_BEFORE_DEAD * settings.WORKER_HEARTBEAT_S)
    return list(WorkerHeartbeat.objects.filter(last_seen__gte=horizon).order_by("name"))


def workers_alive_on(*, host: str) -> list[WorkerHeartbeat]:
    """The live workers of one machine (node names end in "@host"): a container's health check."""
    return [worker for worker in workers_alive() if worker.name.endswith(f"@{host}")]


class WorkerHeartbeatThread(threading.Thread):
    def __init__(self, *, name: str, queues: str) -> None:
        super().__init__(name="worker-heartbeat", daemon=True)
        self.worker_name = name
        self.queues = queues
        self.started_at = timezone.now()
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while True:
                try:
                    worker_heartbeat_write(
                        name=self.worker_name, queues=self.queues, pid=os.getpid(), started_at=self.started_at
                    )
                except Exception:  # the database may be briefly away; beat again next time
                    logger.exception("Worker heartbeat failed")
                    close_old_connections()
                if self.stopped.wait(settings.WORKER_HEARTBEAT_S):
                    break
            WorkerHeartbeat.objects.filter(name=self.worker_name).delete()
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=10)
