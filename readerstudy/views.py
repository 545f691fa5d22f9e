"""Pages of the reading app. Thin: each asks a service or selector and renders."""

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .health import health_report
from .models import Trial
from .roles import Role, redirect_home, role_required
from .trials import TrialNotFound, trial_serve


def landing(request: HttpRequest) -> HttpResponse:
    """Anonymous visitors see what SynthRead is; signed-in users go to their role's place."""
    if request.user.is_authenticated:
        return redirect_home(request.user)
    return render(request, "readerstudy/landing.html")


def home(request: HttpRequest) -> HttpResponse:
    """Where login lands: each role to its place."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    return redirect_home(request.user)


@login_required
def no_role(request: HttpRequest) -> HttpResponse:
    return render(request, "readerstudy/no_role.html")


@role_required(Role.RESEARCHER)
def results_home(request: HttpRequest) -> HttpResponse:
    return render(request, "readerstudy/results_home.html")


@role_required(Role.READER)
def reading_home(request: HttpRequest) -> HttpResponse:
    return render(request, "readerstudy/reading_home.html")


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    report = health_report()
    return JsonResponse(report, status=200 if report["ok"] else 503)


@role_required(Role.READER)
def reading_image(request: HttpRequest, token: str) -> HttpResponse:
    """The current trial's image. The same headers for every image; no ETag, no Last-Modified;
    the token is the only name it has. Anything else is a 404 with no hint."""
    trial = Trial.objects.select_related("session").filter(token=token, session__reader__user=request.user).first()
    if trial is None:
        raise Http404
    try:
        served = trial_serve(session=trial.session, token=token)
    except TrialNotFound:
        raise Http404 from None
    with served.bank_image.file.open("rb") as stored:
        response = HttpResponse(stored.read(), content_type="image/png")
    response["Cache-Control"] = "no-store"
    return response
