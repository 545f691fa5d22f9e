"""API serializers of the generator app (admins only: they show source file names)."""

from pathlib import Path

from rest_framework import serializers

from generator.ml.dcgan import METRICS_SETTINGS, MODE_SEEKING_WEIGHT_MAX

from .models import BankFillJob, Dataset, Subject, SubjectMerge, TrainingJob, UploadJob, Volume


class SubjectSerializer(serializers.ModelSerializer):
    kind_display = serializers.CharField(source="get_kind_display", read_only=True)
    volumes = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    datasets = serializers.SerializerMethodField()
    linked_by_patient_id = serializers.SerializerMethodField()

    class Meta:
        model = Subject
        fields = [
            "id",
            "label",
            "kind",
            "kind_display",
            "note",
            "created_at",
            "volumes",
            "datasets",
            "linked_by_patient_id",
        ]
        read_only_fields = ["id", "kind", "created_at"]

    def validate_label(self, label: str) -> str:
        from .subjects import subject_label_check

        try:
            return subject_label_check(label)
        except ValueError as error:
            raise serializers.ValidationError(str(error)) from error

    def get_datasets(self, subject: Subject) -> list[str]:
        return sorted({volume.dataset.name for volume in subject.volumes.select_related("dataset")})

    def get_linked_by_patient_id(self, subject: Subject) -> bool:
        return subject.patient_keys.exists()


class SubjectMergeSerializer(serializers.Serializer):
    merge = serializers.SlugRelatedField(
        slug_field="label", queryset=Subject.objects.all(), help_text="The subject folded into this one (deleted)."
    )
    reason = serializers.CharField(allow_blank=True, default="")


class SubjectMergeRecordSerializer(serializers.ModelSerializer):
    kept = serializers.SlugRelatedField(slug_field="label", read_only=True)
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = SubjectMerge
        fields = [
            "id",
            "kept",
            "merged_label",
            "merged_kind",
            "volume_ids",
            "bank_image_ids",
            "patient_keys_moved",
            "reason",
            "user",
            "at",
        ]
        read_only_fields = fields


class DatasetSerializer(serializers.ModelSerializer):
    volume_count = serializers.IntegerField(source="volumes.count", read_only=True)

    class Meta:
        model = Dataset
        fields = ["id", "name", "description", "fov_mm", "created_at", "volume_count"]


class VolumeSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="name", read_only=True)
    subject = serializers.SlugRelatedField(slug_field="label", read_only=True)
    subject_kind = serializers.CharField(source="subject.get_kind_display", read_only=True)

    class Meta:
        model = Volume
        fields = [
            "id",
            "dataset",
            "subject",
            "subject_kind",
            "source_name",
            "source_format",
            "checksum",
            "shape",
            "voxel_size_mm",
            "status",
            "error",
            "alignment",
            "correction_lr_deg",
            "correction_ap_deg",
            "correction_cc_deg",
            "correction_level_mm",
            "created_at",
        ]
        read_only_fields = fields


class VolumeUploadSerializer(serializers.Serializer):
    files = serializers.ListField(child=serializers.FileField(), allow_empty=False)
    align = serializers.BooleanField(default=True, help_text="Queue alignment of the stored volumes.")
    subject = serializers.CharField(
        max_length=64,
        allow_blank=True,
        default="",
        help_text="The person every file of this upload shows (created if new). Blank: DICOM series link "
        "by a keyed hash of their patient ID; other files become new subjects.",
    )


class UploadJobSerializer(serializers.ModelSerializer):
    """An upload being ingested on a worker: its progress (``step`` of ``total`` files), then a
    verdict per file in ``results`` (``outcome`` stored, duplicate or error, with its message)."""

    dataset = serializers.SlugRelatedField(slug_field="name", read_only=True)
    file_names = serializers.SerializerMethodField()

    class Meta:
        model = UploadJob
        fields = [
            "id", "dataset", "state", "progress", "file_names", "results", "align", "subject_label", "error",
            "created_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_file_names(self, job: UploadJob) -> list[str]:
        return [entry["name"] for entry in job.files]


class TrainingJobSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="name", queryset=Dataset.objects.all())
    progress_fraction = serializers.FloatField(read_only=True)
    budget = serializers.CharField(source="budget_text", read_only=True)
    diversity = serializers.JSONField(
        read_only=True,
        allow_null=True,
        help_text="The latest measurement's collapse verdict: verdict (collapsed | diverse), ms_ssim_synthetic, "
        "ms_ssim_real, excess, margin, scales, step; null where never measured.",
    )
    log_tail = serializers.SerializerMethodField()
    samples_url = serializers.SerializerMethodField()
    loss_plot_url = serializers.SerializerMethodField()
    generator_url = serializers.SerializerMethodField()

    class Meta:
        model = TrainingJob
        fields = [
            "id",
            "dataset",
            "preset",
            "config",
            "state",
            "progress",
            "progress_fraction",
            "budget",
            "attempts",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "cancel_requested",
            "log_tail",
            "samples_url",
            "loss_plot_url",
            "generator_url",
            "metrics",
            "diversity",
        ]
        read_only_fields = fields

    def get_log_tail(self, job: TrainingJob) -> list[str]:
        return job.log.splitlines()[-12:]

    def _url(self, job: TrainingJob, name: str, available: bool) -> str | None:
        from django.urls import reverse

        return reverse(name, args=[job.pk]) if available else None

    def get_samples_url(self, job: TrainingJob) -> str | None:
        version = job.progress.get("samples", "")
        url = self._url(job, "training-samples", bool(version))
        return f"{url}?v={Path(version).stem}" if url else None

    def get_loss_plot_url(self, job: TrainingJob) -> str | None:
        url = self._url(job, "training-loss", bool(job.progress.get("loss_plot")))
        return f"{url}?step={job.progress.get('step', 0)}" if url else None

    def get_generator_url(self, job: TrainingJob) -> str | None:
        return self._url(job, "training-generator", bool(job.generator_file))


class TrainingJobCreateSerializer(serializers.Serializer):
    dataset = serializers.SlugRelatedField(slug_field="name", queryset=Dataset.objects.all())
    preset = serializers.ChoiceField(choices=TrainingJob.Preset.choices, default=TrainingJob.Preset.MODERN_64)
    epochs = serializers.IntegerField(min_value=1, required=False)
    steps = serializers.IntegerField(min_value=1, required=False)
    minutes = serializers.FloatField(
        min_value=0.01, required=False, help_text="Training time; a resumed job gets the time it had left."
    )
    batch_size = serializers.IntegerField(min_value=1, max_value=1024, required=False)
    seed = serializers.IntegerField(min_value=0, required=False)
    generator_steps_per_discriminator_step = serializers.ChoiceField(choices=[1, 2], required=False)
    label_smoothing = serializers.FloatField(min_value=0.0, max_value=0.5, required=False)
    discriminator_input_batchnorm = serializers.BooleanField(required=False)
    mixed_precision = serializers.ChoiceField(choices=["auto", "on", "off"], required=False)
    metrics_every = serializers.ChoiceField(
        choices=list(METRICS_SETTINGS), required=False, help_text="When to measure SWD and MS-SSIM diversity."
    )
    diff_augment = serializers.CharField(
        required=False, allow_blank=True, help_text='DiffAugment policies, e.g. "translation,cutout" (blank: none).'
    )
    generator_ema_decay = serializers.FloatField(
        min_value=0.0, max_value=0.9999, required=False, help_text="Moving average of the generator (0: none)."
    )
    discriminator_learning_rate = serializers.FloatField(
        min_value=1e-6, max_value=1e-2, required=False, help_text="The discriminator's own rate (default: the same)."
    )
    discriminator_minibatch_stddev = serializers.BooleanField(
        required=False, help_text="A minibatch standard deviation feature in the discriminator (against collapse)."
    )
    network_width = serializers.FloatField(
        min_value=0.05, max_value=1.0, required=False, help_text="Every layer's filters × this (the paper's net: 1)."
    )
    mode_seeking_weight = serializers.FloatField(
        min_value=0.0,
        max_value=MODE_SEEKING_WEIGHT_MAX,
        required=False,
        help_text="Weight of the mode-seeking term in the generator's loss (against collapse; 0: none).",
    )


class BankFillJobSerializer(serializers.ModelSerializer):
    training_job = serializers.PrimaryKeyRelatedField(queryset=TrainingJob.objects.all())
    held_out_dataset = serializers.SlugRelatedField(
        slug_field="name", queryset=Dataset.objects.all(), required=False, allow_null=True
    )
    real_count = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    synthetic_count = serializers.IntegerField(min_value=1)
    collapse_override_reason = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Needed to fill from a generator judged collapsed; kept with the fill and in the audit bundle.",
    )
    collapse_override_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = BankFillJob
        fields = [
            "id",
            "training_job",
            "synthetic_count",
            "real_count",
            "held_out_dataset",
            "seed",
            "diversity",
            "collapse_override_reason",
            "collapse_override_by",
            "collapse_override_at",
            "state",
            "progress",
            "report",
            "error",
            "created_at",
            "finished_at",
        ]
        read_only_fields = [
            "id",
            "diversity",
            "collapse_override_at",
            "state",
            "progress",
            "report",
            "error",
            "created_at",
            "finished_at",
        ]
