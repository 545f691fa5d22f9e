"""Pages of the platform: the landing page, where each role lands, invitations, /healthz."""

import secrets

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import PasswordResetConfirmView, PasswordResetView, redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .accounts import api_token_create, api_token_created_at, api_token_revoke, password_reset_allowed
from .health import health_report
from .roles import Role, redirect_home, role_required, user_role


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


class InvitationView(PasswordResetConfirmView):
    """An invitation or a password-reset link: set a password, get signed in, land home (a
    reader with one study to read lands on it)."""

    template_name = "registration/set_password.html"
    post_reset_login = True
    # The lockout backend (django-axes) comes first and logs nobody in: name the one that does.
    post_reset_login_backend = "django.contrib.auth.backends.ModelBackend"
    success_url = reverse_lazy("home")


@login_required
def no_role(request: HttpRequest) -> HttpResponse:
    return render(request, "readerstudy/no_role.html")


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """ok / not ok (200 / 503) for anyone, a load balancer say; the details (database, broker,
    workers by host name, error texts) for admins and for ``Authorization: Bearer <HEALTHZ_TOKEN>``."""
    report = health_report()
    status = 200 if report["ok"] else 503
    if not _sees_health_details(request):
        return JsonResponse({"ok": report["ok"]}, status=status)
    return JsonResponse(report, status=status)


def _sees_health_details(request: HttpRequest) -> bool:
    token = settings.HEALTHZ_TOKEN
    if token and secrets.compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return True
    return user_role(request.user) is Role.ADMIN


@role_required(Role.RESEARCHER)
def api_token(request: HttpRequest) -> HttpResponse:
    """A researcher's (or admin's) API token for scripts: create (replacing the old one), revoke.
    The key is shown once, when created."""
    new_key = None
    if request.method == "POST":
        if request.POST.get("action") == "revoke":
            if api_token_revoke(user=request.user):
                messages.success(request, "Your API token is revoked: scripts using it are now refused.")
        else:
            new_key = api_token_create(user=request.user)
    return render(
        request,
        "readerstudy/api_token.html",
        {
            "token_created": api_token_created_at(user=request.user),
            "new_key": new_key,
            "example_url": request.build_absolute_uri("/api/v1/studies/"),
        },
    )


class LimitedPasswordResetView(PasswordResetView):
    """Django's reset form, with a limit per address and per account (a login lockout is no use
    if reset links can be asked for without end): over it, the form says so and sends nothing."""

    template_name = "registration/password_reset.html"
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"

    def form_valid(self, form):
        from axes.helpers import get_client_ip_address  # the address as the login lockout sees it

        if not password_reset_allowed(address=get_client_ip_address(self.request), email=form.cleaned_data["email"]):
            form.add_error(
                None, "Too many reset links were asked for from here or for this account: try again in an hour."
            )
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().form_valid(form)
