"""Pages of the reading app. Thin: each asks a service or selector and renders."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET

from generator.models import BankImage
from readerstudy.core.roles import Role, role_required, user_has_role

from .dry_run import dry_run_serve, dry_run_start
from .images import bank_image_bytes
from .models import Reader, Study
from .quiz import QuizError, quiz_images, quiz_new, quiz_score
from .readers import consent_accept, consent_needed, reader_main_score, reader_progress
from .sessions import SessionError, reader_session
from .trials import GRACE_S, TrialNotFound, trial_serve_for_user
from .viewing import ADVICE, DISPLAY_CHECK_SIZE, display_check_png


def _quiz_study(study_id: int) -> Study:
    study = Study.objects.filter(pk=study_id, quiz_enabled=True).first()
    if study is None:
        raise Http404
    return study


@never_cache
@require_GET
def quiz(request: HttpRequest, study_id: int) -> HttpResponse:
    """The public quiz: a fresh grid of images for anyone; nothing is stored about visitors."""
    study = _quiz_study(study_id)
    token = quiz_new(study=study)
    try:
        images = quiz_images(study=study, token=token)
    except QuizError as error:
        return render(request, "readerstudy/quiz.html", {"study": study, "error": str(error)}, status=503)
    return render(request, "readerstudy/quiz.html", {"study": study, "token": token, "indices": range(len(images))})


@require_GET  # not never_cache: its Expires header would differ from a reader's image headers
def quiz_image(request: HttpRequest, study_id: int, token: str, index: int) -> HttpResponse:
    study = _quiz_study(study_id)
    try:
        images = quiz_images(study=study, token=token)
    except QuizError:
        raise Http404 from None
    if not 0 <= index < len(images):
        raise Http404
    return _image_response(images[index])


@never_cache
@require_GET
def quiz_key(request: HttpRequest, study_id: int, token: str) -> HttpResponse:
    """The answer key and the visitor's score, from their marks in the query string."""
    study = _quiz_study(study_id)
    try:
        images = quiz_images(study=study, token=token)
    except QuizError:
        raise Http404 from None
    marks = [request.GET.get(f"mark{index}", "") for index in range(len(images))]
    key, right = quiz_score(images=images, marks=marks)
    return render(
        request,
        "readerstudy/quiz_key.html",
        {"study": study, "token": token, "key": key, "right": right, "total": len(key)},
    )


def _reader_or_404(request: HttpRequest, study_id: int) -> Reader:
    reader = Reader.objects.select_related("study").filter(user=request.user, study_id=study_id).first()
    if reader is None:
        raise Http404
    return reader


def _image_response(image: BankImage) -> HttpResponse:
    """Every image a reader sees leaves through here: the same headers for both classes, no
    ETag, no Last-Modified, never cached; the token in the URL is the only name it has."""
    response = HttpResponse(bank_image_bytes(image), content_type="image/png")
    response["Cache-Control"] = "no-store"
    return response


@role_required(Role.READER)
def reading_home(request: HttpRequest) -> HttpResponse:
    """The reader's studies; with exactly one to read, straight to it (where invitations land)."""
    readers = list(Reader.objects.select_related("study").filter(user=request.user).order_by("-pk"))
    rows = [(reader, reader_progress(reader=reader)) for reader in readers]
    to_read = [r for r, progress in rows if r.study.state == Study.State.OPEN and progress.status != "finished"]
    if len(to_read) == 1 and request.GET.get("list") != "1":
        return redirect("reading-study", study_id=to_read[0].study_id)
    return render(request, "readerstudy/reading_home.html", {"rows": rows})


@role_required(Role.READER)
def reading_study(request: HttpRequest, study_id: int) -> HttpResponse:
    """A study's front page: consent first if the study asks for it, then the instructions."""
    reader = _reader_or_404(request, study_id)
    if consent_needed(reader=reader):
        return redirect("reading-consent", study_id=study_id)
    progress = reader_progress(reader=reader)
    if progress.status == "finished":
        return redirect("reading-thanks", study_id=study_id)
    return render(
        request,
        "readerstudy/reading_instructions.html",
        {"study": reader.study, "progress": progress, "read_url": reverse("reading-read", args=[study_id])},
    )


@role_required(Role.READER)
def reading_consent(request: HttpRequest, study_id: int) -> HttpResponse:
    reader = _reader_or_404(request, study_id)
    if request.method == "POST":
        if request.POST.get("accept") == "yes":
            consent_accept(reader=reader)
            return redirect("reading-study", study_id=study_id)
        messages.error(request, "You can read once you have accepted the consent statement.")
    return render(request, "readerstudy/reading_consent.html", {"study": reader.study})


@role_required(Role.READER)
@ensure_csrf_cookie
def reading_read(request: HttpRequest, study_id: int) -> HttpResponse:
    """The reading page; its script drives the reader's API (one trial at a time)."""
    reader = _reader_or_404(request, study_id)
    if consent_needed(reader=reader):
        return redirect("reading-consent", study_id=study_id)
    try:
        reader_session(user=request.user, study_id=study_id)
    except SessionError as error:
        messages.error(request, str(error))
        return redirect(f"{reverse('reading-home')}?list=1")
    api = reverse("api-me-session")
    return _reading_page(
        request,
        study=reader.study,
        session_url=f"{api}?study={study_id}",
        calls_url=f"{reverse('api-me-calls')}?study={study_id}",
        viewing_url=f"{reverse('api-me-viewing')}?study={study_id}",
        done_url=reverse("reading-thanks", args=[study_id]),
    )


def _reading_page(
    request: HttpRequest,
    *,
    study: Study,
    session_url: str,
    calls_url: str,
    viewing_url: str,
    done_url: str,
    dry_run=False,
):
    return render(
        request,
        "readerstudy/reading_read.html",
        {
            "study": study,
            "dry_run": dry_run,
            "display_check_size": DISPLAY_CHECK_SIZE,
            "advice": {answer.value: text for answer, text in ADVICE.items()},
            "reading_config": {
                "sessionUrl": session_url,
                "callsUrl": calls_url,
                "viewingUrl": viewing_url,
                "doneUrl": done_url,
                "askConfidence": study.ask_confidence,
                "askReason": study.ask_reason,
                "displaySizePx": study.display_size_px,
                "graceS": GRACE_S,
            },
        },
    )


@role_required(Role.READER)
def reading_thanks(request: HttpRequest, study_id: int) -> HttpResponse:
    reader = _reader_or_404(request, study_id)
    if reader_progress(reader=reader).status != "finished":
        return redirect("reading-study", study_id=study_id)
    score = reader_main_score(reader=reader) if reader.study.show_score_after else None
    return render(request, "readerstudy/reading_thanks.html", {"study": reader.study, "score": score})


@login_required
@require_GET
def display_check_image(request: HttpRequest) -> HttpResponse:
    """The display check's grey-step pattern (the same for everyone: no evidence in it)."""
    response = HttpResponse(display_check_png(), content_type="image/png")
    response["Cache-Control"] = "private, max-age=86400"
    return response


@login_required
def reading_image(request: HttpRequest, token: str) -> HttpResponse:
    """The current trial's image; anything else is a 404 with no hint, or a 403 for a role that
    reads nothing. A reader's own current trial is proof enough of their role, so the role is
    looked up only when there is none (a query less on every image)."""
    try:
        served = trial_serve_for_user(user=request.user, token=token)
    except TrialNotFound:
        if not user_has_role(request.user, Role.READER):
            raise PermissionDenied from None
        raise Http404 from None
    return _image_response(served.bank_image)


@role_required()
def dry_run(request: HttpRequest, study_id: int) -> HttpResponse:
    """Admins: GET shows the study's front matter as a reader sees it; POST starts a fresh dry
    run and opens the reading page on it. Nothing is recorded."""
    study = get_object_or_404(Study, pk=study_id)
    if request.method == "POST":
        try:
            dry_run_start(store=request.session, study=study)
        except SessionError as error:
            messages.error(request, f"No dry run: {error}")
            return redirect("dry-run", study_id=study_id)
        return redirect("dry-run-read", study_id=study_id)
    return render(request, "readerstudy/dry_run.html", {"study": study, "dry_run": True})


@role_required()
@ensure_csrf_cookie
def dry_run_read(request: HttpRequest, study_id: int) -> HttpResponse:
    study = get_object_or_404(Study, pk=study_id)
    return _reading_page(
        request,
        study=study,
        session_url=reverse("api-dry-run-session", args=[study_id]),
        calls_url=reverse("api-dry-run-calls", args=[study_id]),
        viewing_url=reverse("api-dry-run-viewing", args=[study_id]),
        done_url=reverse("dry-run-done", args=[study_id]),
        dry_run=True,
    )


@role_required()
def dry_run_done(request: HttpRequest, study_id: int) -> HttpResponse:
    study = get_object_or_404(Study, pk=study_id)
    return render(request, "readerstudy/reading_thanks.html", {"study": study, "dry_run": True})


@role_required()
def dry_run_image(request: HttpRequest, study_id: int, token: str) -> HttpResponse:
    """A dry run's image: served like a reader's, but it does not become evidence."""
    study = get_object_or_404(Study, pk=study_id)
    try:
        trial = dry_run_serve(store=request.session, study=study, token=token)
    except TrialNotFound:
        raise Http404 from None
    return _image_response(BankImage.objects.get(pk=trial.bank_image_id))
