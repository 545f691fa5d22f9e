"""URLs: pages, the admin, the API under /api/v1/ with its schema, and /healthz."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from generator import urls as generator_urls

from . import api, views

api_v1 = [
    path("me/", api.MeView.as_view(), name="api-me"),
    path("me/session", api.MySessionView.as_view(), name="api-me-session"),
    path("me/calls", api.MyCallsView.as_view(), name="api-me-calls"),
    *generator_urls.api_urlpatterns,
]

urlpatterns = [
    path("", views.landing, name="landing"),
    path("home/", views.home, name="home"),
    path("no-role/", views.no_role, name="no-role"),
    path("results/", views.results_home, name="results-home"),
    path("reading/", views.reading_home, name="reading-home"),
    path("reading/image/<str:token>", views.reading_image, name="reading-image"),
    path("healthz", views.healthz, name="healthz"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="registration/login.html"),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # One login page for everybody, the admin included.
    path("admin/login/", RedirectView.as_view(pattern_name="login", query_string=True)),
    path("admin/", admin.site.urls),
    path("generator/", include(generator_urls.urlpatterns)),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
