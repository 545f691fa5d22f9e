"""The project as a whole: migrations, the OpenAPI schema, who may open which page."""

import re

import pytest
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver

from readerstudy.core.roles import Role, user_role
from tests.factories import PASSWORD, UserFactory


@pytest.mark.django_db
def test_models_and_migrations_agree():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


@pytest.mark.django_db
def test_openapi_schema_builds_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert "/api/v1/me/" in out.read_text()


def _sample_paths(patterns, prefix: str = ""):
    """One concrete path per URL pattern, converters and groups filled with plausible values."""
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _sample_paths(entry.url_patterns, prefix + _concrete(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield "/" + prefix + _concrete(entry.pattern)


def _concrete(pattern) -> str:
    text = str(pattern)
    text = re.sub(r"<(?:\w+:)?\w+>", "1", text)  # path() converters
    text = re.sub(r"\(\?P<\w+>([a-z_]+)(?:\|[^)]*)?\)", r"\1", text)  # named alternations: first one
    text = re.sub(r"\(\?P<\w+>[^)]*\)", "1", text)
    text = text.replace("(?:.*)", "x").replace("^", "").replace("$", "").replace("\\Z", "")
    return text


PUBLIC_PATHS = {"/", "/accounts/login/", "/healthz", "/accounts/password-reset/", "/accounts/password-reset/sent/"}
PUBLIC_PREFIXES = ("/accounts/reset/",)  # invitation and reset links: a dead link says so, nothing else


@pytest.mark.django_db
def test_anonymous_users_reach_only_login_landing_and_healthz(client):
    paths = sorted(set(_sample_paths(get_resolver().url_patterns)))
    assert len(paths) > 20, paths  # the sweep really covers the admin and the API
    reached = []
    for path in paths:
        response = client.get(path, follow=True)
        landed_on = response.request["PATH_INFO"]
        public = landed_on in PUBLIC_PATHS or landed_on.startswith(PUBLIC_PREFIXES)
        if response.status_code not in (401, 403, 404, 405) and not public:
            reached.append((path, landed_on, response.status_code))
    assert not reached, reached
    assert client.get("/accounts/login/").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "lands_on"),
    [
        (Role.ADMIN, "/admin/"),
        (Role.RESEARCHER, "/results/"),
        (Role.READER, "/reading/"),
        (None, "/no-role/"),
    ],
)
def test_login_sends_each_role_to_its_place(client, role, lands_on):
    user = UserFactory(role=role.value if role else None)
    response = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD}, follow=True)
    assert response.redirect_chain, "login did not redirect"
    assert response.redirect_chain[-1][0] == lands_on
    assert response.status_code == 200
    assert user_role(user) == (role or Role.NONE)


@pytest.mark.django_db
def test_a_wrong_password_stays_on_login_with_a_message(client):
    user = UserFactory(role="readers")
    response = client.post("/accounts/login/", {"username": user.username, "password": "nope"})
    assert response.status_code == 200
    assert b"didn&#x27;t match" in response.content or b"didn't match" in response.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "path", "status"),
    [
        (Role.READER, "/results/", 403),
        (Role.RESEARCHER, "/reading/", 403),
        (Role.READER, "/api/schema/", 200),
        (Role.ADMIN, "/results/", 200),
        (Role.ADMIN, "/reading/", 200),
    ],
)
def test_roles_are_kept_to_their_pages(client, role, path, status):
    client.force_login(UserFactory(role=role.value))
    assert client.get(path).status_code == status


@pytest.mark.django_db
def test_readers_and_researchers_cannot_use_the_admin(client):
    for role in (Role.READER, Role.RESEARCHER):
        client.force_login(UserFactory(role=role.value))
        response = client.get("/admin/")
        assert response.status_code == 302 and "login" in response["Location"]


@pytest.mark.django_db
def test_api_me_names_the_role(client):
    user = UserFactory(role="researchers")
    client.force_login(user)
    assert client.get("/api/v1/me/").json() == {"username": user.username, "role": "researchers"}


@pytest.mark.django_db
def test_every_admin_list_opens_for_admins(client):
    from django.contrib import admin
    from django.urls import reverse

    client.force_login(UserFactory(role="admins"))
    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert client.get(url).status_code == 200, url
