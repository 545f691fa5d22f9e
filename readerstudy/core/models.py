"""Models of the platform: worker heartbeats, and the probe job that checks a worker set-up end
to end. Their tables were made by the reading app (label ``readerstudy``) and keep their names."""

from django.db import models

from .jobs import LeasedJob


class WorkerHeartbeat(models.Model):
    """One row per live Celery worker, refreshed every WORKER_HEARTBEAT_S by the worker itself
    (a thread, so a worker busy training still beats). /healthz reads it."""

    name = models.CharField(max_length=200, unique=True, help_text="Celery node name, e.g. gpu@host.")
    queues = models.CharField(max_length=200, blank=True)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "readerstudy_workerheartbeat"  # born in the reading app; the table keeps its name

    def __str__(self) -> str:
        return self.name


class ProbeJob(LeasedJob):
    """A diagnostic job: counts to ``steps`` with a pause per step on a chosen queue, through
    the same lease, heartbeat, progress and resume machinery as training. Admins run one to
    check that a worker set-up works (``manage.py probe_job --wait``)."""

    task_name = "readerstudy.tasks.probe_job_run"

    class Queue(models.TextChoices):
        DEFAULT = "default"
        GPU = "gpu"

    queue = models.CharField(max_length=16, choices=Queue.choices, default=Queue.DEFAULT)
    steps = models.PositiveIntegerField(default=10)
    step_seconds = models.FloatField(default=0.5)

    class Meta:
        db_table = "readerstudy_probejob"

    def queue_name(self) -> str:
        return self.queue

    def __str__(self) -> str:
        return f"Probe job {self.pk} on {self.queue} ({self.state})"


class ProbeTick(models.Model):
    """One row per step a probe job ran, written at once: who ran it and when, so overlapping
    runs of one job would show."""

    job = models.ForeignKey(ProbeJob, on_delete=models.CASCADE, related_name="ticks")
    owner = models.CharField(max_length=200)
    step = models.PositiveIntegerField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "readerstudy_probetick"
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.job_id}:{self.step} by {self.owner}"


class PasswordResetRequest(models.Model):
    """One request for a password-reset link, kept a day to limit how many an address or an
    account may ask for (``accounts.password_reset_allowed``); no e-mail address is stored."""

    address = models.GenericIPAddressField(null=True, blank=True, db_index=True)
    email_key = models.CharField(max_length=64, db_index=True, help_text="sha256 of the lower-cased address.")
    at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"password reset asked at {self.at:%Y-%m-%d %H:%M} from {self.address or 'unknown'}"
