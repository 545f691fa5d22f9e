"""URLs: pages, the admin, the API under /api/v1/ with its schema, and /healthz."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from generator import urls as generator_urls
from readerstudy.core import views as core_views
from readerstudy.reading import api, views
from readerstudy.results import api as results_api
from readerstudy.results import views as results_views

router = SimpleRouter(trailing_slash=True)
router.register("studies", api.StudyViewSet, basename="study")
router.register("studies", results_api.StudyResultsViewSet, basename="study-results")
router.register("readers", api.ReaderViewSet, basename="reader")

api_v1 = [
    path("me/", api.MeView.as_view(), name="api-me"),
    path("me/session", api.MySessionView.as_view(), name="api-me-session"),
    path("me/calls", api.MyCallsView.as_view(), name="api-me-calls"),
    path("me/viewing", api.MyViewingView.as_view(), name="api-me-viewing"),
    path("studies/<int:study_id>/dry-run/session", api.DryRunSessionView.as_view(), name="api-dry-run-session"),
    path("studies/<int:study_id>/dry-run/calls", api.DryRunCallsView.as_view(), name="api-dry-run-calls"),
    path("studies/<int:study_id>/dry-run/viewing", api.DryRunViewingView.as_view(), name="api-dry-run-viewing"),
    *router.urls,
    *generator_urls.api_urlpatterns,
]

urlpatterns = [
    path("", core_views.landing, name="landing"),
    path("home/", core_views.home, name="home"),
    path("no-role/", core_views.no_role, name="no-role"),
    path("results/", results_views.results_home, name="results-home"),
    path("results/<int:study_id>/", results_views.results_study, name="results-study"),
    path("results/<int:study_id>/<str:name>.png", results_views.results_plot, name="results-plot"),
    path(
        "results/<int:study_id>/machine-observer",
        results_views.results_machine_observer,
        name="results-machine-observer",
    ),
    path("reading/", views.reading_home, name="reading-home"),
    path("reading/image/<str:token>", views.reading_image, name="reading-image"),
    path("reading/display-check.png", views.display_check_image, name="display-check-image"),
    path("reading/<int:study_id>/", views.reading_study, name="reading-study"),
    path("reading/<int:study_id>/consent", views.reading_consent, name="reading-consent"),
    path("reading/<int:study_id>/read", views.reading_read, name="reading-read"),
    path("reading/<int:study_id>/thanks", views.reading_thanks, name="reading-thanks"),
    path("reading/<int:study_id>/dry-run/", views.dry_run, name="dry-run"),
    path("reading/<int:study_id>/dry-run/read", views.dry_run_read, name="dry-run-read"),
    path("reading/<int:study_id>/dry-run/done", views.dry_run_done, name="dry-run-done"),
    path("reading/<int:study_id>/dry-run/image/<str:token>", views.dry_run_image, name="dry-run-image"),
    path("healthz", core_views.healthz, name="healthz"),
    path("quiz/<int:study_id>/", views.quiz, name="quiz"),
    path("quiz/<int:study_id>/<str:token>/<int:index>.png", views.quiz_image, name="quiz-image"),
    path("quiz/<int:study_id>/<str:token>/key", views.quiz_key, name="quiz-key"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="registration/login.html"),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/api-token/", core_views.api_token, name="api-token"),
    # Invitations are password-reset links: one view sets the password for both.
    path("accounts/reset/<uidb64>/<token>/", core_views.InvitationView.as_view(), name="password_reset_confirm"),
    path(
        "accounts/password-reset/",
        core_views.LimitedPasswordResetView.as_view(),
        name="password_reset",
    ),
    path(
        "accounts/password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="registration/password_reset_sent.html"),
        name="password_reset_done",
    ),
    # One login page for everybody, the admin included.
    path("admin/login/", RedirectView.as_view(pattern_name="login", query_string=True)),
    path("admin/", admin.site.urls),
    path("generator/", include(generator_urls.urlpatterns)),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
