"""Pages of the generator app outside Django's admin (admins only): training jobs, and the
files only admins may fetch (previews, samples, loss plots, generators)."""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from readerstudy.jobs import job_cancel
from readerstudy.roles import role_required

from .forms import TrainingJobForm
from .models import TrainingJob, Volume
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
        except ValueError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, f"Training job {job.pk} queued on the GPU queue.")
            return redirect("training-detail", job_id=job.pk)
    budgets = {preset: preset_form_defaults(preset) for preset in TrainingJob.Preset.values}
    return render(request, "generator/training_new.html", {"form": form, "budgets": budgets})


@role_required()
def training_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_object_or_404(TrainingJob.objects.select_related("dataset"), pk=job_id)
    return render(request, "generator/training_detail.html", {"job": job, "data": TrainingJobSerializer(job).data})


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
