"""Pages of the generator app outside Django's admin (admins only): training jobs, and the
files only admins may fetch (previews, samples, loss plots, generators)."""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from readerstudy.core.errors import ApplicationError
from readerstudy.core.jobs import job_cancel
from readerstudy.core.roles import role_required

from .bank import bank_counts
from .bank_fill import bank_fill_create
from .bank_import import images_import, subject_manifest_read
from .forms import BankFillForm, ImageImportForm, TrainingJobForm
from .ingest import saved_uploads
from .models import BankImage, TrainingJob, Volume
from .serializers import TrainingJobSerializer
from .training_jobs import preset_form_defaults, training_job_create


def _private_file(file, content_type: str, filename: str | None = None) -> FileResponse:
    response = FileResponse(file, content_type=content_type, as_attachment=bool(filename), filename=filename or "")
    response["Cache-Control"] = "private, no-store"
    return response


@staff_member_required
def volume_preview(request: HttpRequest, volume_id: int) -> FileResponse:
    volume = get_object_or_404(Volume, pk=volume_id)
    if not volume.preview:
        raise Http404("This volume has no preview yet.")
    return _private_file(volume.preview.open("rb"), "image/png")


@role_required()
def training_list(request: HttpRequest) -> HttpResponse:
    jobs = TrainingJob.objects.select_related("dataset").order_by("-created_at")[:200]
    return render(request, "generator/training_list.html", {"jobs": TrainingJobSerializer(jobs, many=True).data})


@role_required()
def training_new(request: HttpRequest) -> HttpResponse:
    form = TrainingJobForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = training_job_create(user=request.user, **form.service_arguments())
        except ApplicationError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"Training job {job.pk} queued on the GPU queue.")
            return redirect("training-detail", job_id=job.pk)
    budgets = {preset: preset_form_defaults(preset) for preset in TrainingJob.Preset.values}
    return render(request, "generator/training_new.html", {"form": form, "budgets": budgets})


@role_required()
def training_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(TrainingJob.objects.select_related("dataset"), pk=job_id)
    context = {
        "job": job,
        "data": TrainingJobSerializer(job).data,
        "fill_form": BankFillForm(),
        "fills": job.bank_fills.select_related("held_out_dataset").order_by("-created_at"),
    }
    return render(request, "generator/training_detail.html", context)


@require_POST
@role_required()
def training_cancel(request: HttpRequest, job_id: int) -> HttpResponse:
    job_cancel(job=get_object_or_404(TrainingJob, pk=job_id))
    messages.info(request, "Cancel requested: the job stops within a few steps, keeping its checkpoint.")
    return redirect("training-detail", job_id=job_id)


def _stored_picture(job_id: int, key: str) -> FileResponse:
    job = get_object_or_404(TrainingJob, pk=job_id)
    name = job.progress.get(key)
    if not name or not default_storage.exists(name):
        raise Http404("Not written yet.")
    return _private_file(default_storage.open(name, "rb"), "image/png")


@role_required()
def training_samples(request: HttpRequest, job_id: int) -> FileResponse:
    return _stored_picture(job_id, "samples")


@role_required()
def training_loss(request: HttpRequest, job_id: int) -> FileResponse:
    return _stored_picture(job_id, "loss_plot")


@role_required()
def training_generator(request: HttpRequest, job_id: int) -> FileResponse:
    job = get_object_or_404(TrainingJob, pk=job_id)
    if not job.generator_file:
        raise Http404("The generator is exported when the job has finished.")
    return _private_file(
        job.generator_file.open("rb"), "application/octet-stream", f"synthread-job{job.pk}-{job.preset}.keras"
    )


@require_POST
@role_required()
def training_fill(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(TrainingJob, pk=job_id)
    form = BankFillForm(request.POST)
    if form.is_valid():
        try:
            fill = bank_fill_create(training_job=job, user=request.user, **form.cleaned_data)
        except ApplicationError as error:
            messages.error(request, str(error))
        else:
            messages.success(request, f"Bank fill {fill.pk} queued on the GPU queue.")
    else:
        messages.error(request, f"Bank fill not queued: {form.errors.as_text()}")
    return redirect("training-detail", job_id=job_id)


@role_required()
def bank_browser(request: HttpRequest) -> HttpResponse:
    """Admins' view of the bank: a paged thumbnail grid with filters, counts, and an import form."""
    import_form = ImageImportForm(request.POST or None, request.FILES or None)
    import_results = []
    if request.method == "POST" and import_form.is_valid():
        data = import_form.cleaned_data
        try:
            manifest = data["manifest"].read().decode("utf-8-sig") if data["manifest"] else ""
            with saved_uploads(data["files"]) as files:
                import_results = images_import(
                    files=files,
                    generator_name=data["generator_name"],
                    image_class=data["image_class"],
                    note=data["note"],
                    expected_size=data["expected_size"],
                    subject_label=data["subject"],
                    subject_labels=subject_manifest_read(manifest) if manifest else None,
                )
        except (ApplicationError, UnicodeDecodeError) as error:
            import_form.add_error(None, str(error))
    images = BankImage.objects.select_related("volume__dataset", "volume__subject", "subject").order_by("-created_at")
    filters = {key: request.GET.get(key, "") for key in ("image_class", "status", "training_job", "generator_name")}
    for key, value in filters.items():
        if value:
            images = images.filter(**{key: value})
    page = Paginator(images, 48).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "filters": filters,
        "counts": bank_counts(),
        "import_form": import_form,
        "import_results": import_results,
        "generators": BankImage.objects.exclude(generator_name="").values_list("generator_name", flat=True).distinct(),
        "jobs": TrainingJob.objects.filter(bank_images__isnull=False).distinct().values_list("pk", flat=True),
    }
    return render(request, "generator/bank.html", context)


@role_required()
def bank_image_file(request: HttpRequest, image_id: int) -> FileResponse:
    image = get_object_or_404(BankImage, pk=image_id)
    return _private_file(image.file.open("rb"), "image/png")
