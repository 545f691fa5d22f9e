"""Subjects (people), datasets of their T1-weighted volumes, alignment, training, and the image bank."""

from django.conf import settings
from django.db import models

from readerstudy.core.errors import ApplicationError, EvidenceFrozen
from readerstudy.core.jobs import LeasedJob


class Dataset(models.Model):
    """Volumes that train one generator together; their slices share one field of view."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    fov_mm = models.FloatField(default=180.0, help_text="Side of the square field of view of every slice, in mm.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Subject(models.Model):
    """A pseudonymous person: the independent unit of every split that must be held out.

    One subject may own several volumes (scanned twice, or in two datasets) and imported real
    images; two scans of one person are near-copies of anatomy, so they always fall on one side
    of a split. The label is the only name kept; a DICOM patient ID links through
    ``SubjectPatientKey`` (a keyed hash), never stored itself."""

    class Kind(models.TextChoices):
        PERSON = "person", "person"
        DEMO_PSEUDO = "demo-pseudo", "demo pseudo-subject"

    label = models.CharField(max_length=64, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PERSON)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["label"]

    def __str__(self) -> str:
        return self.label if self.kind == self.Kind.PERSON else f"{self.label} ({self.get_kind_display()})"


class SubjectPatientKey(models.Model):
    """HMAC-SHA256 of a DICOM patient ID (and its issuer) under SUBJECT_HASH_KEY: a later series of
    the same patient finds its subject, while the ID itself is never stored."""

    key = models.CharField(max_length=64, unique=True)
    subject = models.ForeignKey(Subject, on_delete=models.CASCADE, related_name="patient_keys")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"patient key {self.key[:8]}… of {self.subject}"


class SubjectMerge(models.Model):
    """Audit of an admin's merge of two subjects found to be one person: who, when, why, what moved."""

    kept = models.ForeignKey(Subject, on_delete=models.PROTECT, related_name="merges")
    merged_label = models.CharField(max_length=64)
    merged_kind = models.CharField(max_length=16)
    volume_ids = models.JSONField(default=list)
    bank_image_ids = models.JSONField(default=list)
    patient_keys_moved = models.PositiveIntegerField(default=0)
    reason = models.TextField(blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.merged_label} merged into {self.kept} at {self.at:%Y-%m-%d %H:%M}"


class Volume(models.Model):
    """One T1-weighted volume of a subject, de-identified: only pixel data and geometry are kept
    (stored as NIfTI, whatever came in); the original file name is shown to admins only."""

    class Status(models.TextChoices):
        UPLOADED = "uploaded"
        ALIGNING = "aligning"
        READY = "ready"
        FAILED = "failed"

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="volumes")
    subject = models.ForeignKey(Subject, on_delete=models.PROTECT, related_name="volumes")
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
        ordering = ["dataset", "subject__label", "pk"]

    def __str__(self) -> str:
        return f"volume {self.pk} ({self.subject.label} in {self.dataset.name})"

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


class UploadJob(LeasedJob):
    """Volume files uploaded through the page, the API or ``ingest_volumes --queue``, ingested on a
    worker (`default` queue). The raw files wait in private storage under ``uploads/<id>/`` (never
    served) and go as each is ingested; nothing of them outlives the job (``generator.uploads``)."""

    task_name = "generator.tasks.upload_run"

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="upload_jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    subject_label = models.CharField(max_length=100, blank=True, help_text="The one person every file shows.")
    align = models.BooleanField(default=True, help_text="Queue alignment of each stored volume.")
    files = models.JSONField(default=list, help_text="[{name, stored, bytes}]: the uploaded names, the stored copies.")
    results = models.JSONField(default=list, help_text="Per file: {name, outcome, message, volume}.")
    raw_removed = models.BooleanField(default=False, help_text="The stored copies of the uploaded files are gone.")

    @property
    def storage_prefix(self) -> str:
        return f"uploads/{self.pk}"

    def __str__(self) -> str:
        return f"upload {self.pk} of {len(self.files)} file(s) into {self.dataset} ({self.state})"


class TrainingJob(LeasedJob):
    """One DCGAN training run on a dataset's streamed slices, on the `gpu` queue.

    Checkpoints, the sample grid per epoch, the loss plot and the exported generator go through
    Django's storage under ``training/<id>/``, so any worker can resume the run."""

    task_name = "generator.tasks.training_run"

    class Preset(models.TextChoices):
        QUICK_64 = "quick-64", "quick-64 (64², the paper's net for a few minutes on a CPU; may collapse)"
        MODERN_64 = (
            "modern-64",
            "modern-64 (64², minutes on a CPU; half width, minibatch spread, mode seeking, weight averaging)",
        )
        PAPER_128 = "paper-128", "paper-128 (128², 35 epochs: GPU work)"
        PAPER_256 = "paper-256", "paper-256 (256², 35 epochs: the paper; GPU work)"

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="training_jobs")
    # The default is the preset beyond the paper: minutes of the paper's own net on a CPU collapse.
    preset = models.CharField(max_length=16, choices=Preset.choices, default=Preset.MODERN_64)
    config = models.JSONField(help_text="The full training configuration (generator.ml.dcgan.TrainingConfig).")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    generator_file = models.FileField(upload_to="training/", max_length=255, blank=True)
    # Latent seeds handed out to bank fills so far: each fill takes the next block, so no two fills
    # of a job ever draw the same seed (and the same image) twice.
    next_latent_seed = models.BigIntegerField(default=0)
    metrics = models.JSONField(
        default=list,
        blank=True,
        help_text="Quality metrics per measured step (generator.ml.metrics): "
        "{step, epoch, swd_mean, swd_levels, ms_ssim_synthetic, ms_ssim_real, scales, pairs, sample_count}.",
    )

    def __str__(self) -> str:
        return f"training job {self.pk} ({self.preset} on {self.dataset})"

    @property
    def storage_prefix(self) -> str:
        return f"training/{self.pk}"

    @property
    def progress_fraction(self) -> float:
        """The share of the budget spent: of its steps, or of its minutes."""
        progress = self.progress
        if "fraction" in progress:
            return round(min(1.0, float(progress["fraction"])), 4)
        total = progress.get("total") or 0  # reported before budgets in minutes existed
        return round(min(1.0, progress.get("step", 0) / total), 4) if total else 0.0

    @property
    def diversity(self) -> dict | None:
        """The collapse verdict of the latest quality measurement (generator.ml.metrics), or None
        where the job was never measured."""
        from generator.ml.metrics import diversity_verdict

        if not self.metrics:
            return None
        return diversity_verdict(self.metrics[-1], margin=settings.GENERATOR_COLLAPSE_MARGIN)

    @property
    def collapse_advice(self) -> str:
        """What to do about a collapsed generator ("" for one that is not): measured in
        benchmarks/README.md, minutes of the paper's net collapse, and modern-64 needs a few hundred steps."""
        diversity = self.diversity
        if not diversity or diversity["verdict"] != "collapsed":
            return ""
        modern = self.Preset.MODERN_64.value
        if self.preset != self.Preset.MODERN_64:
            return f"Train a {modern} job: minutes of the paper's net collapse on small data sets."
        if not self.config.get("mode_seeking_weight"):
            return (
                f"It trained {diversity['step']:,} steps without mode seeking (its {modern} predates it): "
                f"a new {modern} job has it, and was diverse from about 300 steps on the demo's data."
            )
        return (
            f"It trained {diversity['step']:,} steps; {modern} was diverse from about 300 steps on the demo's "
            "data: train a job with more minutes (a slow CPU takes fewer steps a minute)."
        )

    @property
    def budget_text(self) -> str:
        """The budget as an admin gave it, e.g. "4 minutes", "900 steps", "35 epochs"."""
        for unit in ("minutes", "steps", "epochs"):
            amount = self.config.get(unit)
            if amount is not None:
                return f"{amount:g} {unit}"
        return "?"


class BankImage(models.Model):
    """One image a reader may be shown, real or synthetic, rendered by the one renderer.

    Provenance: a real slice is (volume, grid index); ours is (training job, latent seed); an
    imported one is (generator name, file checksum). ``storage_key`` is opaque and random: the
    file's name says nothing. Once shown in a session (``first_shown_at``) an image is evidence:
    it may be excluded from new sessions, never changed or deleted."""

    class ImageClass(models.TextChoices):
        REAL = "real"
        SYNTHETIC = "synthetic"

    class Status(models.TextChoices):
        ACTIVE = "active"
        EXCLUDED = "excluded"

    # Fields an evidence image may still change: its status and why.
    MUTABLE_WHEN_EVIDENCE = frozenset({"status", "exclusion_reason"})

    image_class = models.CharField(max_length=16, choices=ImageClass.choices, db_index=True)
    volume = models.ForeignKey(Volume, on_delete=models.PROTECT, null=True, blank=True, related_name="bank_images")
    # Whose image a real one is (its volume's subject, or named at import); none for synthetic ones.
    subject = models.ForeignKey(Subject, on_delete=models.PROTECT, null=True, blank=True, related_name="bank_images")
    grid_index = models.PositiveIntegerField(null=True, blank=True)
    training_job = models.ForeignKey(
        TrainingJob, on_delete=models.PROTECT, null=True, blank=True, related_name="bank_images"
    )
    latent_seed = models.BigIntegerField(null=True, blank=True)
    generator_name = models.CharField(max_length=100, blank=True, help_text="An imported image's generator.")
    external_checksum = models.CharField(max_length=64, blank=True, help_text="sha256 of the imported file.")
    note = models.TextField(blank=True)
    fill_job = models.ForeignKey("BankFillJob", on_delete=models.PROTECT, null=True, blank=True, related_name="images")
    storage_key = models.CharField(max_length=32, unique=True)
    file = models.FileField(upload_to="bank/", max_length=255)
    matrix_size = models.PositiveIntegerField()
    pixel_checksum = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    exclusion_reason = models.CharField(max_length=255, blank=True)
    nearest_training_distance = models.FloatField(null=True, blank=True)
    first_shown_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["image_class", "status"])]
        constraints = [
            # One copy of each image: a reader must never meet the same pixels twice, nor a revealed
            # image's twin. Excluded images may repeat (a fill's screened-out draw, an old twin).
            models.UniqueConstraint(
                fields=["pixel_checksum"], condition=models.Q(status="active"), name="one_active_image_per_pixels"
            ),
        ]

    def __str__(self) -> str:
        return f"bank image {self.pk} ({self.image_class}, {self.status})"

    @property
    def is_evidence(self) -> bool:
        return self.first_shown_at is not None

    @property
    def provenance(self) -> str:
        if self.volume_id is not None:
            return f"{self.volume} grid slice {self.grid_index}"
        if self.training_job_id is not None:
            return f"training job {self.training_job_id}, latent seed {self.latent_seed}"
        imported = f"{self.generator_name} (file sha256 {self.external_checksum[:12]}…)"
        return f"{imported}, subject {self.subject.label}" if self.subject_id else imported

    def save(self, *args, **kwargs) -> None:  # noqa: DJ012 (beside delete: the two guards of evidence)
        if self.pk is not None:
            stored = BankImage.objects.filter(pk=self.pk).values().first()
            if stored and stored["first_shown_at"] is not None:
                changed = {name for name, value in stored.items() if _field_value(self, name) != value}
                if changed - self.MUTABLE_WHEN_EVIDENCE:
                    raise EvidenceFrozen(f"{self} has been shown to a reader; only its status may change.")
            if self.status == self.Status.ACTIVE and stored and stored["status"] != self.status:
                twin = BankImage.objects.filter(pixel_checksum=self.pixel_checksum, status=self.Status.ACTIVE).first()
                if twin is not None:  # said here, not as the database's IntegrityError
                    raise ApplicationError(f"{self} cannot be active again: same pixels as bank image {twin.pk}.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self.is_evidence or BankImage.objects.filter(pk=self.pk, first_shown_at__isnull=False).exists():
            raise EvidenceFrozen(f"{self} has been shown to a reader; exclude it instead of deleting it.")
        return super().delete(*args, **kwargs)


def _field_value(image: "BankImage", column: str):
    value = getattr(image, column)
    return value.name if hasattr(value, "name") and column == "file" else value


class BankFillJob(LeasedJob):
    """Fills the bank from a finished training job: generate, screen, render, store; and real
    slices from the grid it trained on. On the `gpu` queue."""

    task_name = "generator.tasks.bank_fill_run"

    training_job = models.ForeignKey(TrainingJob, on_delete=models.PROTECT, related_name="bank_fills")
    synthetic_count = models.PositiveIntegerField()
    real_count = models.PositiveIntegerField()
    held_out_dataset = models.ForeignKey(
        Dataset,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Volumes of other subjects, never trained on: they set the screen's threshold.",
    )
    seed = models.BigIntegerField(default=0, help_text="Draws the real slices and the held-out sample.")
    first_latent_seed = models.BigIntegerField(
        default=0, help_text="The fill's synthetic images use latent seeds first_latent_seed + 0, 1, …"
    )
    report = models.JSONField(default=dict, blank=True, help_text="Threshold, exclusions, data-copying statistic.")
    # The generator's collapse verdict when the fill was asked for, and, for a collapsed one, who
    # filled the bank from it anyway, when and why: evidence a reviewer finds in the audit bundle.
    diversity = models.JSONField(default=dict, blank=True, help_text="The training job's collapse verdict then.")
    collapse_override_reason = models.TextField(blank=True)
    collapse_override_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    collapse_override_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"bank fill {self.pk} from training job {self.training_job_id}"
