"""Datasets of T1-weighted volumes, their alignment to the template, and alignment jobs."""

from django.conf import settings
from django.db import models

from readerstudy.jobs import LeasedJob


class Dataset(models.Model):
    """Volumes that train one generator together; their slices share one field of view."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    fov_mm = models.FloatField(default=180.0, help_text="Side of the square field of view of every slice, in mm.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Volume(models.Model):
    """One subject's T1-weighted volume, de-identified: only pixel data and geometry are kept
    (stored as NIfTI, whatever came in); the original file name is shown to admins only."""

    class Status(models.TextChoices):
        UPLOADED = "uploaded"
        ALIGNING = "aligning"
        READY = "ready"
        FAILED = "failed"

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="volumes")
    subject_label = models.CharField(max_length=64)
    source_name = models.CharField(max_length=255, help_text="Original file name (admins only).")
    source_format = models.CharField(max_length=16)
    checksum = models.CharField(max_length=64, unique=True, help_text="sha256 of the uploaded file(s).")
    file = models.FileField(upload_to="volumes/", max_length=255)
    shape = models.JSONField(default=list)
    voxel_size_mm = models.JSONField(default=list)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UPLOADED, db_index=True)
    error = models.TextField(blank=True)
    # The automatic rigid alignment to the template (4x4 native world <- template world, angles,
    # metric), and the admin's manual correction on top of it.
    alignment = models.JSONField(default=dict, blank=True)
    correction_lr_deg = models.FloatField(default=0.0, help_text="Extra rotation about the left-right axis.")
    correction_ap_deg = models.FloatField(default=0.0, help_text="Extra rotation about the anterior-posterior axis.")
    correction_cc_deg = models.FloatField(default=0.0, help_text="Extra rotation about the cranio-caudal axis.")
    correction_level_mm = models.FloatField(default=0.0, help_text="Shift of the centre section along z, in mm.")
    preview = models.FileField(upload_to="previews/", max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dataset", "subject_label"], name="unique_subject_per_dataset"),
        ]
        ordering = ["dataset", "subject_label"]

    def __str__(self) -> str:
        return f"{self.dataset.name}/{self.subject_label}"

    @property
    def has_correction(self) -> bool:
        return any((self.correction_lr_deg, self.correction_ap_deg, self.correction_cc_deg, self.correction_level_mm))


class VolumeCorrection(models.Model):
    """Audit log of an admin's manual alignment correction: who changed what, when."""

    volume = models.ForeignKey(Volume, on_delete=models.PROTECT, related_name="corrections")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True)
    before = models.JSONField()
    after = models.JSONField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"correction of {self.volume} at {self.at:%Y-%m-%d %H:%M}"


class AlignmentJob(LeasedJob):
    """Registers one volume to the template (about 10 s) on a worker, with the job lease."""

    task_name = "generator.tasks.alignment_run"

    volume = models.ForeignKey(Volume, on_delete=models.CASCADE, related_name="alignment_jobs")

    def __str__(self) -> str:
        return f"alignment of {self.volume} ({self.state})"


class TrainingJob(LeasedJob):
    """One DCGAN training run on a dataset's streamed slices, on the `gpu` queue.

    Checkpoints, the sample grid per epoch, the loss plot and the exported generator go through
    Django's storage under ``training/<id>/``, so any worker can resume the run."""

    task_name = "generator.tasks.training_run"

    class Preset(models.TextChoices):
        QUICK_64 = "quick-64", "quick-64 (64², a few minutes on a CPU)"
        PAPER_128 = "paper-128", "paper-128 (128², 35 epochs: GPU work)"
        PAPER_256 = "paper-256", "paper-256 (256², 35 epochs: the paper; GPU work)"

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="training_jobs")
    preset = models.CharField(max_length=16, choices=Preset.choices, default=Preset.QUICK_64)
    config = models.JSONField(help_text="The full training configuration (generator.ml.dcgan.TrainingConfig).")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    generator_file = models.FileField(upload_to="training/", max_length=255, blank=True)

    def __str__(self) -> str:
        return f"training job {self.pk} ({self.preset} on {self.dataset})"

    @property
    def storage_prefix(self) -> str:
        return f"training/{self.pk}"
