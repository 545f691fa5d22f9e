"""Models of the results app: the machine-observer job. Its table was made by the reading app
(label ``readerstudy``) and keeps its name."""

from django.db import models

from readerstudy.core.jobs import LeasedJob


class MachineObserverJob(LeasedJob):
    """A classifier two-sample test beside the human readers: a small CNN trained from scratch
    to tell the study's real images from its synthetic ones, tested on a held-out split (by
    subject, and by training job and seed). On the ``default`` queue: it needs TensorFlow's op
    determinism, which is process-wide and would stay on in a training worker. Its result is a
    row of the results table."""

    task_name = "readerstudy.tasks.machine_observer_run"

    study = models.ForeignKey("readerstudy.Study", on_delete=models.CASCADE, related_name="observer_jobs")
    seed = models.PositiveIntegerField(default=0)
    epochs = models.PositiveIntegerField(default=8)
    batch_size = models.PositiveIntegerField(default=32)
    result = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "readerstudy_machineobserverjob"  # born in the reading app; the table keeps its name

    def queue_name(self) -> str:
        return "default"

    def __str__(self) -> str:
        return f"Machine observer {self.pk} of {self.study} ({self.state})"
