"""Pages of the results app: every study's progress, a study's results, plots, the machine
observer. Thin: each asks a service or selector and renders."""

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from readerstudy.core.jobs import JobState
from readerstudy.core.roles import Role, role_required
from readerstudy.reading.readers import reader_progress
from readerstudy.reading.studies import studies_visible

from .observer import machine_observer_create, machine_observer_latest
from .plots import PLOTS
from .scoring import study_results, study_table_rows, study_viewing_rows


@role_required(Role.RESEARCHER)
def results_home(request: HttpRequest) -> HttpResponse:
    """Every study with its readers' progress; each links to its results."""
    studies = studies_visible(user=request.user).order_by("-created_at")
    rows = [(study, [reader_progress(reader=r) for r in study.readers.all()]) for study in studies]
    summaries = [
        (study, len(progress), sum(p.status == "finished" for p in progress), sum(p.done > 0 for p in progress))
        for study, progress in rows
    ]
    return render(request, "readerstudy/results_home.html", {"summaries": summaries})


@role_required(Role.RESEARCHER)
def results_study(request: HttpRequest, study_id: int) -> HttpResponse:
    """A study's results: the table, how to read it, plots, downloads."""
    study = get_object_or_404(studies_visible(user=request.user), pk=study_id)
    results = study_results(study=study)
    api = reverse("study-detail", args=[study.pk])
    return render(
        request,
        "readerstudy/results_study.html",
        {
            "study": study,
            "results": results,
            "rows": study_table_rows(study=study, results=results),
            "viewing": study_viewing_rows(study=study),
            "observer": machine_observer_latest(study=study),
            "observer_running": study.observer_jobs.filter(state__in=[JobState.QUEUED, JobState.RUNNING]).first(),
            "has_roc": any(r.roc and r.roc.points for r in results.readers),
            "downloads": [
                ("table.csv", f"{api}results/table/?format=csv"),
                ("calls.csv", f"{api}results/calls/?format=csv"),
                ("study.imrmc", f"{api}results/imrmc/"),
                ("audit bundle (.zip)", f"{api}results/bundle/"),
            ],
        },
    )


@role_required(Role.RESEARCHER)
@require_POST
def results_machine_observer(request: HttpRequest, study_id: int) -> HttpResponse:
    """Queue a machine observer run for the study (a Celery task on the gpu queue)."""
    study = get_object_or_404(studies_visible(user=request.user), pk=study_id)
    job = machine_observer_create(study=study)  # a refusal becomes a message (ApplicationErrorMiddleware)
    messages.success(request, f"Machine observer {job.pk} queued; its row appears here when it has finished.")
    return redirect("results-study", study_id=study_id)


@role_required(Role.RESEARCHER)
def results_plot(request: HttpRequest, study_id: int, name: str) -> HttpResponse:
    if name not in PLOTS:
        raise Http404
    study = get_object_or_404(studies_visible(user=request.user), pk=study_id)
    return HttpResponse(PLOTS[name](study_results(study=study)), content_type="image/png")
