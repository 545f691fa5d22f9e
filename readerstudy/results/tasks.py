"""Celery tasks of the results app: thin wrappers over services, keyword-only primary keys.

The task name is the one it had in the reading app: messages already queued still find it."""

from celery import shared_task

from readerstudy.core.jobs import job_run

from .models import MachineObserverJob
from .observer import machine_observer_work


@shared_task(name="readerstudy.tasks.machine_observer_run")
def machine_observer_run(*, job_id: int) -> str | None:
    final = job_run(model=MachineObserverJob, job_id=job_id, work=machine_observer_work)
    return final.value if final else None
