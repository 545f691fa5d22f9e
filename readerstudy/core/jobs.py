"""Long jobs that survive dead workers: a lease with a heartbeat on the job's own row.

Why not rely on the broker: Redis hands an unacknowledged message to another worker only after
its visibility timeout (hours), so a worker killed mid-training would strand its job. Instead:

- ``job_enqueue`` marks a job queued and sends its task once the transaction commits.
- The task calls ``job_run``, which claims the row under a row lock (a job has at most one
  lease holder), runs the work, and records how it ended: succeeded, failed or cancelled.
- While the work runs, a keeper thread renews the lease every ``JOB_LEASE_HEARTBEAT_S``,
  flushes the progress the work reported, and picks up cancel requests. The work calls
  ``handle.checkpoint()`` between steps, which raises if the job was cancelled or its lease
  was lost (the worker stalled and another took over): it never runs beside the new owner.
- ``jobs_requeue_lapsed`` (when a worker starts, and periodically from Celery beat) puts every
  running job whose lease ran out back in the queue, and sends every queued job whose task
  could not be sent (the broker was down) again. Work resumes from the job's own progress
  and checkpoints, so re-running a job is safe (tasks are idempotent).

Lease times come from each worker's clock: keep hosts on NTP.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import ClassVar, TypeVar

from celery import current_app
from django.apps import apps
from django.conf import settings
from django.db import close_old_connections, connection, models, transaction
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)


class JobState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class LeasedJob(models.Model):
    """Abstract base of every long job (training, bank filling, ...).

    A subclass names the Celery task that runs it (called with ``job_id=pk``); the task calls
    ``job_run``. ``progress`` is free-form JSON the work reports (step, total, losses, ...).
    """

    task_name: ClassVar[str] = ""

    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attempts = models.PositiveIntegerField(default=0, help_text="How many times a worker claimed this job.")
    cancel_requested = models.BooleanField(default=False)
    progress = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    log = models.TextField(blank=True, help_text="Lifecycle events: claims, re-queues, the end.")

    class Meta:
        abstract = True

    def queue_name(self) -> str | None:
        """The queue to send to; None lets the task routes decide by task name."""
        return None

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_STATES


Job = TypeVar("Job", bound=LeasedJob)


class JobCancelled(Exception):
    """Raised by ``JobHandle.checkpoint`` when a cancel was requested."""


class LeaseLost(Exception):
    """Raised by ``JobHandle.checkpoint`` when another worker now holds the job's lease."""


def leased_job_models() -> list[type[LeasedJob]]:
    return [model for model in apps.get_models() if issubclass(model, LeasedJob)]


def _log_line(message: str, now: datetime | None = None) -> str:
    return f"{(now or timezone.now()).isoformat(timespec='seconds')} {message}\n"


def job_log(*, job: LeasedJob, message: str) -> None:
    """Append one event to the job's log without overwriting a concurrent append."""
    type(job).objects.filter(pk=job.pk).update(log=Concat(F("log"), Value(_log_line(message))))


BROKER_DOWN_NOTE = "the broker did not answer; the job will be sent when it does"


def _send(job_model: type[LeasedJob], job_id: int, queue: str | None) -> None:
    """Hand the job's task to the broker. When the broker is down, the request that queued the
    job must not fail with it: the job stays queued without ``queued_at`` (never sent), and
    ``jobs_requeue_lapsed`` sends it once the broker answers again."""
    options = {"queue": queue} if queue else {}
    try:
        current_app.send_task(job_model.task_name, kwargs={"job_id": job_id}, **options)
    except (OperationalError, OSError):
        logger.warning("%s %s: %s", job_model.__name__, job_id, BROKER_DOWN_NOTE)
        job_model.objects.filter(pk=job_id, state=JobState.QUEUED).update(
            queued_at=None, log=Concat(F("log"), Value(_log_line(BROKER_DOWN_NOTE)))
        )


def job_enqueue(*, job: LeasedJob) -> None:
    """Mark a job queued and send its task after the surrounding transaction commits."""
    now = timezone.now()
    job.state = JobState.QUEUED
    job.queued_at = now
    job.lease_owner = ""
    job.lease_expires_at = None
    job.log += _log_line("queued", now)
    job.save()
    model, job_id, queue = type(job), job.pk, job.queue_name()
    transaction.on_commit(lambda: _send(model, job_id, queue))


def job_cancel(*, job: LeasedJob) -> None:
    """Cancel at once if nobody runs it yet; otherwise ask the running work to stop."""
    with transaction.atomic():
        locked = type(job).objects.select_for_update().get(pk=job.pk)
        if locked.is_finished:
            return
        locked.cancel_requested = True
        if locked.state == JobState.QUEUED:
            locked.state = JobState.CANCELLED
            locked.finished_at = timezone.now()
        locked.log += _log_line("cancel requested")
        locked.save()
    job.refresh_from_db()


def job_claim(*, model: type[Job], job_id: int, owner: str, now: datetime | None = None) -> Job | None:
    """Take a job's lease under a row lock; None if it is finished or someone else holds it."""
    now = now or timezone.now()
    with transaction.atomic():
        job = model.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.is_finished:
            return None
        if job.state == JobState.RUNNING and job.lease_expires_at and job.lease_expires_at > now:
            return None
        if job.cancel_requested:
            job.state = JobState.CANCELLED
            job.finished_at = now
            job.save()
            return None
        job.state = JobState.RUNNING
        job.lease_owner = owner
        job.lease_expires_at = now + timedelta(seconds=settings.JOB_LEASE_TTL_S)
        job.heartbeat_at = now
        job.attempts += 1
        job.started_at = job.started_at or now
        job.log += _log_line(f"claimed by {owner} (attempt {job.attempts})", now)
        job.save()
    return job


def jobs_requeue_lapsed(*, now: datetime | None = None) -> list[LeasedJob]:
    """Re-queue every running job whose lease ran out (its worker died); give up after
    ``JOB_MAX_ATTEMPTS`` claims. Send again every queued job whose task never reached the
    broker (it was down). Returns the jobs it touched."""
    now = now or timezone.now()
    touched: list[LeasedJob] = []
    for model in leased_job_models():
        with transaction.atomic():
            unsent = model.objects.select_for_update(skip_locked=True).filter(
                state=JobState.QUEUED, queued_at__isnull=True, cancel_requested=False
            )
            for job in unsent:
                job.log += _log_line("sent again", now)
                job_enqueue(job=job)
                touched.append(job)
        with transaction.atomic():
            lapsed = model.objects.select_for_update(skip_locked=True).filter(
                state=JobState.RUNNING, lease_expires_at__lt=now
            )
            for job in lapsed:
                if job.attempts >= settings.JOB_MAX_ATTEMPTS:
                    job.state = JobState.FAILED
                    job.finished_at = now
                    job.error = f"Its worker stopped answering {job.attempts} times; not retried again."
                    job.log += _log_line(f"lease of {job.lease_owner} lapsed; gave up", now)
                    job.save()
                else:
                    job.log += _log_line(f"lease of {job.lease_owner} lapsed; re-queued", now)
                    job_enqueue(job=job)
                touched.append(job)
    if touched:
        logger.warning("Re-queued or failed %d job(s) with lapsed leases", len(touched))
    return touched


class JobHandle:
    """What the work sees of its job: report progress, check for cancel and lease loss."""

    def __init__(self, *, job: LeasedJob, owner: str) -> None:
        self.job = job
        self.owner = owner
        self._progress = dict(job.progress)
        self._progress_dirty = False
        self._lock = threading.Lock()
        self.cancel_requested = threading.Event()
        self.lease_lost = threading.Event()

    def report(self, **progress) -> None:
        """Record progress; it reaches the row at the next heartbeat (at most every few seconds)."""
        with self._lock:
            self._progress.update(progress)
            self._progress_dirty = True

    @property
    def progress(self) -> dict:
        with self._lock:
            return dict(self._progress)

    def take_progress(self) -> dict | None:
        with self._lock:
            if not self._progress_dirty:
                return None
            self._progress_dirty = False
            return dict(self._progress)

    def should_stop(self) -> bool:
        """For work that winds down by itself (a training loop saves a checkpoint first): True
        once a cancel was requested. A lost lease raises at once: another worker owns the job."""
        if self.lease_lost.is_set():
            raise LeaseLost(f"job {self.job.pk}: another worker holds the lease now")
        return self.cancel_requested.is_set()

    def checkpoint(self) -> None:
        """Call between steps: stops the work if it was cancelled or lost its lease."""
        if self.should_stop():
            raise JobCancelled(f"job {self.job.pk} was cancelled")


def _heartbeat(handle: JobHandle) -> None:
    """Renew the lease, flush progress and read the cancel flag, in one round trip or two."""
    model = type(handle.job)
    now = timezone.now()
    fields = {"heartbeat_at": now, "lease_expires_at": now + timedelta(seconds=settings.JOB_LEASE_TTL_S)}
    progress = handle.take_progress()
    if progress is not None:
        fields["progress"] = progress
    renewed = model.objects.filter(pk=handle.job.pk, state=JobState.RUNNING, lease_owner=handle.owner).update(**fields)
    if not renewed:
        handle.lease_lost.set()
        return
    if model.objects.filter(pk=handle.job.pk, cancel_requested=True).exists():
        handle.cancel_requested.set()


class _LeaseKeeper(threading.Thread):
    def __init__(self, handle: JobHandle) -> None:
        super().__init__(name=f"lease-keeper-{handle.job.pk}", daemon=True)
        self.handle = handle
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(settings.JOB_LEASE_HEARTBEAT_S):
                try:
                    _heartbeat(self.handle)
                except Exception:  # a database hiccup must not kill the keeper: retry next beat
                    logger.exception("Heartbeat of job %s failed", self.handle.job.pk)
                    close_old_connections()
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=30)


def worker_owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def job_run(*, model: type[Job], job_id: int, work: Callable[[Job, JobHandle], None]) -> JobState | None:
    """Claim the job, run ``work(job, handle)`` under a kept lease, record how it ended.

    Returns the final state, or None when this worker did not (or no longer) own the job.
    Exceptions of the work are recorded on the row, then re-raised for Celery's logs.
    """
    owner = worker_owner_id()
    job = job_claim(model=model, job_id=job_id, owner=owner)
    if job is None:
        logger.info("%s %s: not claimed (finished, or another worker holds it)", model.__name__, job_id)
        return None
    handle = JobHandle(job=job, owner=owner)
    keeper = _LeaseKeeper(handle)
    keeper.start()
    failure: BaseException | None = None
    try:
        work(job, handle)
        final, error = JobState.SUCCEEDED, ""
    except JobCancelled:
        final, error = JobState.CANCELLED, ""
    except LeaseLost:
        keeper.stop()
        logger.warning("%s %s: lease lost; leaving it to its new owner", model.__name__, job_id)
        return None
    except Exception as exc:
        final, error, failure = JobState.FAILED, "".join(traceback.format_exception_only(exc)).strip(), exc
        logger.exception("%s %s failed", model.__name__, job_id)
    finally:
        keeper.stop()
    now = timezone.now()
    finished = model.objects.filter(pk=job_id, lease_owner=owner, state=JobState.RUNNING).update(
        state=final,
        finished_at=now,
        error=error,
        progress=handle.progress,
        lease_expires_at=None,
        log=Concat(F("log"), Value(_log_line(final.value, now))),
    )
    if failure is not None:
        raise failure
    return final if finished else None
