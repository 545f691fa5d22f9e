"""Pages of the reading app. Thin: each asks a service or selector and renders."""

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .health import health_report
from .roles import Role, redirect_home, role_required


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
