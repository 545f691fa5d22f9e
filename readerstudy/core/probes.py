"""The probe job's services: create one, and the work it does (see models.ProbeJob)."""

import time

from django.db import transaction

from .errors import ApplicationError
from .jobs import JobHandle, job_enqueue
from .models import ProbeJob, ProbeTick


def probe_job_create(*, queue: str = ProbeJob.Queue.DEFAULT, steps: int = 10, step_seconds: float = 0.5) -> ProbeJob:
    if steps < 1:
        raise ApplicationError("A probe job needs at least one step.")
    if step_seconds < 0:
        raise ApplicationError("step_seconds cannot be negative.")
    with transaction.atomic():
        job = ProbeJob.objects.create(queue=queue, steps=steps, step_seconds=step_seconds)
        job_enqueue(job=job)
    return job


def probe_job_work(job: ProbeJob, handle: JobHandle) -> None:
    # Resume where the last flushed progress says the previous run got to, as training resumes
    # from its latest checkpoint.
    first_step = int(handle.progress.get("step", 0))
    for step in range(first_step + 1, job.steps + 1):
        handle.checkpoint()
        time.sleep(job.step_seconds)
        ProbeTick.objects.create(job=job, owner=handle.owner, step=step)
        handle.report(step=step, total=job.steps)
