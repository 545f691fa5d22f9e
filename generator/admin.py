"""Admin pages of the generator app: datasets, volumes (upload, preview, correction), jobs."""

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from readerstudy.core.admin import LeasedJobAdmin
from readerstudy.core.errors import ApplicationError

from .bank import bank_image_exclude
from .bank_fill import bank_fill_create
from .forms import VolumeUploadForm
from .ingest import dataset_get_or_create
from .models import (
    AlignmentJob,
    BankFillJob,
    BankImage,
    Dataset,
    Subject,
    SubjectMerge,
    TrainingJob,
    UploadJob,
    Volume,
    VolumeCorrection,
)
from .subjects import subject_merge
from .uploads import upload_job_create
from .volumes import CORRECTION_FIELDS, alignment_job_create, volume_correct


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "fov_mm", "volume_count", "ready_count", "created_at")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                volume_total=Count("volumes"),
                ready_total=Count("volumes", filter=Q(volumes__status=Volume.Status.READY)),
            )
        )

    @admin.display(description="volumes", ordering="volume_total")
    def volume_count(self, dataset: Dataset) -> int:
        return dataset.volume_total

    @admin.display(description="aligned", ordering="ready_total")
    def ready_count(self, dataset: Dataset) -> int:
        return dataset.ready_total


class SubjectVolumeInline(admin.TabularInline):
    model = Volume
    fields = ("dataset", "source_format", "shape", "status", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Subject)
class SubjectAdmin(admin.ModelAdmin):
    """People, pseudonymous: rename, annotate, and merge two found to be one person."""

    list_display = ("label", "kind", "volume_count", "real_image_count", "linked_by_patient_id", "created_at")
    list_filter = ("kind", "volumes__dataset")
    search_fields = ("label", "note")
    readonly_fields = ("kind", "created_at")
    fields = ("label", "kind", "note", "created_at")
    inlines = [SubjectVolumeInline]
    actions = ["merge_subjects"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                volume_total=Count("volumes", distinct=True),
                image_total=Count("bank_images", distinct=True),
                key_total=Count("patient_keys", distinct=True),
            )
        )

    def has_add_permission(self, request) -> bool:
        return False  # subjects come with their volumes and images (upload, API, commands)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # merge instead: a subject's volumes and images are evidence

    @admin.display(description="volumes", ordering="volume_total")
    def volume_count(self, subject: Subject) -> int:
        return subject.volume_total

    @admin.display(description="real bank images", ordering="image_total")
    def real_image_count(self, subject: Subject) -> int:
        return subject.image_total

    @admin.display(description="linked by DICOM patient ID", boolean=True)
    def linked_by_patient_id(self, subject: Subject) -> bool:
        return subject.key_total > 0

    @admin.action(description="Merge the two selected subjects (one person)")
    def merge_subjects(self, request, queryset):
        subjects = list(queryset.order_by("pk"))
        if len(subjects) != 2:
            self.message_user(request, "Select exactly two subjects to merge.", messages.ERROR)
            return None
        if request.POST.get("confirm") == "yes":
            keep = next((s for s in subjects if str(s.pk) == request.POST.get("keep")), None)
            if keep is None:
                self.message_user(request, "Choose the subject to keep.", messages.ERROR)
                return None
            merge = next(s for s in subjects if s.pk != keep.pk)
            record = subject_merge(keep=keep, merge=merge, user=request.user, reason=request.POST.get("reason", ""))
            self.message_user(
                request,
                f"Merged {record.merged_label} into {keep.label}: {len(record.volume_ids)} volume(s), "
                f"{len(record.bank_image_ids)} real image(s) moved; recorded in the merge log.",
                messages.SUCCESS,
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Merge two subjects",
            "subjects": subjects,
            "opts": self.model._meta,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/generator/subject/merge.html", context)


@admin.register(SubjectMerge)
class SubjectMergeAdmin(admin.ModelAdmin):
    list_display = ("at", "merged_label", "kept", "user", "reason")
    readonly_fields = [field.name for field in SubjectMerge._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class VolumeCorrectionInline(admin.TabularInline):
    model = VolumeCorrection
    extra = 0
    can_delete = False
    readonly_fields = ("at", "user", "before", "after")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Volume)
class VolumeAdmin(admin.ModelAdmin):
    change_list_template = "admin/generator/volume/change_list.html"
    list_display = (
        "__str__",
        "subject",
        "thumbnail",
        "status",
        "shape_text",
        "voxels_text",
        "source_name",
        "created_at",
    )
    list_filter = ("dataset", "status", "subject__kind")
    list_select_related = ("dataset", "subject")
    search_fields = ("subject__label", "source_name")
    readonly_fields = (
        "dataset",
        "subject",
        "source_name",
        "source_format",
        "checksum",
        "shape",
        "voxel_size_mm",
        "status",
        "error",
        "alignment_summary",
        "preview_image",
        "created_at",
    )
    fields = (
        "dataset",
        "subject",
        "status",
        "error",
        "preview_image",
        "alignment_summary",
        *CORRECTION_FIELDS,
        "shape",
        "voxel_size_mm",
        "source_name",
        "source_format",
        "checksum",
        "created_at",
    )
    inlines = [VolumeCorrectionInline]
    actions = ["realign"]

    def has_add_permission(self, request) -> bool:
        return False  # volumes come in through "Upload volumes", which checks and de-identifies them

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a volume is evidence once its slices trained a generator

    def get_urls(self):
        upload = path("upload/", self.admin_site.admin_view(self.upload_view), name="generator_volume_upload")
        upload_job = path(
            "upload/<int:job_id>/", self.admin_site.admin_view(self.upload_job_view), name="generator_volume_upload_job"
        )
        return [upload, upload_job, *super().get_urls()]

    @admin.display(description="preview")
    def thumbnail(self, volume: Volume) -> str:
        if not volume.preview:
            return "-"
        return format_html('<img src="{}" style="height:48px">', reverse("volume-preview", args=[volume.pk]))

    @admin.display(description="preview (axial centre section; mid-sagittal with the level marked)")
    def preview_image(self, volume: Volume) -> str:
        if not volume.preview:
            return "not aligned yet"
        return format_html('<img src="{}" style="max-width:100%">', reverse("volume-preview", args=[volume.pk]))

    @admin.display(description="automatic alignment")
    def alignment_summary(self, volume: Volume) -> str:
        if not volume.alignment:
            return "-"
        rotation = ", ".join(f"{a:+.1f}°" for a in volume.alignment.get("rotation_deg", []))
        translation = ", ".join(f"{t:+.1f}" for t in volume.alignment.get("translation_mm", []))
        seconds = volume.alignment.get("seconds", 0)
        return f"rotation {rotation}; translation {translation} mm; {seconds:.1f} s"

    @admin.display(description="matrix")
    def shape_text(self, volume: Volume) -> str:
        return "×".join(str(n) for n in volume.shape)

    @admin.display(description="voxel mm")
    def voxels_text(self, volume: Volume) -> str:
        return "×".join(f"{v:g}" for v in volume.voxel_size_mm)

    def save_model(self, request, obj: Volume, form, change) -> None:
        # Corrections go through the service, which records who changed what and redraws the preview.
        changed = {name: form.cleaned_data[name] for name in CORRECTION_FIELDS if name in form.changed_data}
        if changed:
            volume_correct(volume=obj, user=request.user, **changed)
            self.message_user(request, f"Correction recorded for {obj}; preview redrawn.", messages.SUCCESS)

    @admin.action(description="Align again")
    def realign(self, request, queryset) -> None:
        for volume in queryset:
            alignment_job_create(volume=volume)
        self.message_user(request, f"Queued alignment of {queryset.count()} volume(s).")

    def upload_view(self, request):
        """The files are stored at once and ingested on a worker: on to the upload's own page."""
        form = VolumeUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            dataset = dataset_get_or_create(
                name=form.cleaned_data["dataset_name"], fov_mm=form.cleaned_data["fov_mm"] or None
            )
            job = upload_job_create(
                dataset=dataset,
                uploads=form.cleaned_data["files"],
                subject_label=form.cleaned_data["subject"],
                user=request.user,
            )
            return redirect("admin:generator_volume_upload_job", job_id=job.pk)
        return self._upload_page(request, form=form, job=None)

    def upload_job_view(self, request, job_id: int):
        """An upload's progress (the page reloads itself until the job ends), then its verdicts."""
        job = get_object_or_404(UploadJob, pk=job_id)
        return self._upload_page(request, form=VolumeUploadForm(), job=job)

    def _upload_page(self, request, *, form, job: UploadJob | None):
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "job": job,
            "title": "Upload volumes",
            "opts": self.model._meta,
        }
        return render(request, "admin/generator/volume/upload.html", context)


@admin.register(UploadJob)
class UploadJobAdmin(LeasedJobAdmin):
    list_display = ("pk", "dataset", "state", "progress_display", "attempts", "created_at", "error")
    list_filter = ("state",)
    readonly_fields = [field.name for field in UploadJob._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(AlignmentJob)
class AlignmentJobAdmin(LeasedJobAdmin):
    list_display = ("pk", "volume", "state", "progress_display", "attempts", "created_at", "error")
    list_filter = ("state",)
    readonly_fields = [field.name for field in AlignmentJob._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(TrainingJob)
class TrainingJobAdmin(LeasedJobAdmin):
    list_display = ("pk", "dataset", "preset", "state", "progress_display", "attempts", "created_at")
    list_filter = ("state", "preset")
    readonly_fields = [field.name for field in TrainingJob._meta.fields]
    actions = ["fill_bank"]

    def has_add_permission(self, request) -> bool:
        return False  # the "New training job" page builds the configuration from a preset

    @admin.action(description="Fill the bank: 200 synthetic + 200 real images each")
    def fill_bank(self, request, queryset) -> None:
        for job in queryset:
            try:
                bank_fill_create(training_job=job, synthetic_count=200)
            except ApplicationError as error:
                self.message_user(request, str(error), messages.ERROR)
            else:
                self.message_user(request, f"Bank fill queued for {job}.", messages.SUCCESS)


@admin.register(BankFillJob)
class BankFillJobAdmin(LeasedJobAdmin):
    list_display = ("pk", "training_job", "state", "progress_display", "synthetic_count", "real_count", "created_at")
    list_filter = ("state",)
    readonly_fields = [field.name for field in BankFillJob._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(BankImage)
class BankImageAdmin(admin.ModelAdmin):
    list_display = ("pk", "thumbnail", "image_class", "status", "provenance", "exclusion_reason", "created_at")
    list_filter = ("image_class", "status", "generator_name")
    readonly_fields = [f.name for f in BankImage._meta.fields if f.name not in BankImage.MUTABLE_WHEN_EVIDENCE]
    actions = ["exclude_images"]

    @admin.display(description="image")
    def thumbnail(self, image: BankImage) -> str:
        return format_html('<img src="{}" style="height:48px">', reverse("bank-image", args=[image.pk]))

    def has_add_permission(self, request) -> bool:
        return False  # images come from a fill or an import, through the one renderer

    def has_delete_permission(self, request, obj=None) -> bool:
        return obj is None or not obj.is_evidence

    @admin.action(description="Exclude from new sessions")
    def exclude_images(self, request, queryset) -> None:
        for image in queryset:
            bank_image_exclude(image=image, reason=f"excluded by {request.user.get_username()}")
        self.message_user(request, f"Excluded {queryset.count()} image(s).")
