"""Celery tasks of the platform: thin wrappers over services, keyword-only primary keys.

Task names are the ones they had before the platform got an app of its own: messages already
queued, and the beat schedule, still find them."""

from celery import shared_task

from .jobs import job_run
from .jobs import jobs_requeue_lapsed as requeue_lapsed
from .models import ProbeJob
from .probes import probe_job_work


@shared_task(name="readerstudy.tasks.probe_job_run")
def probe_job_run(*, job_id: int) -> str | None:
    final = job_run(model=ProbeJob, job_id=job_id, work=probe_job_work)
    return final.value if final else None


@shared_task(name="readerstudy.tasks.jobs_requeue_lapsed")
def jobs_requeue_lapsed() -> int:
    return len(requeue_lapsed())
