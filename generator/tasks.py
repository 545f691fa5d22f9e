"""Celery tasks of the generator app: thin wrappers over services, keyword-only primary keys.

GPU tasks are routed to the `gpu` queue by name (training_*, bank_fill_*); alignment and the
ingest of uploads run on `default`.
"""

from celery import shared_task

from readerstudy.core.jobs import job_run

from .bank_fill import bank_fill_work
from .models import AlignmentJob, BankFillJob, TrainingJob, UploadJob
from .training_jobs import training_job_work
from .uploads import upload_job_work
from .volumes import alignment_job_work


@shared_task(name="generator.tasks.alignment_run")
def alignment_run(*, job_id: int) -> str | None:
    final = job_run(model=AlignmentJob, job_id=job_id, work=alignment_job_work)
    return final.value if final else None


@shared_task(name="generator.tasks.training_run")
def training_run(*, job_id: int) -> str | None:
    final = job_run(model=TrainingJob, job_id=job_id, work=training_job_work)
    return final.value if final else None


@shared_task(name="generator.tasks.bank_fill_run")
def bank_fill_run(*, job_id: int) -> str | None:
    final = job_run(model=BankFillJob, job_id=job_id, work=bank_fill_work)
    return final.value if final else None


@shared_task(name="generator.tasks.upload_run")
def upload_run(*, job_id: int) -> str | None:
    final = job_run(model=UploadJob, job_id=job_id, work=upload_job_work)
    return final.value if final else None
