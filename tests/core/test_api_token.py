"""API tokens (issue #26): a researcher makes one on a page, a script fetches table.csv with it,
and a revoked one gets 401."""

import pytest
from django.test import Client

from readerstudy.reading.models import Study
from tests.factories import StudyFactory, UserFactory, researcher_of

pytestmark = pytest.mark.django_db


def _table(study: Study, key: str):
    return Client().get(f"/api/v1/studies/{study.pk}/results/table/?format=csv", HTTP_AUTHORIZATION=f"Token {key}")


def _refused(response) -> bool:
    """DRF's answer to a dead token (403: the session is the first authentication it tries)."""
    return response.status_code == 403 and b"Invalid token" in response.content


def test_a_token_fetches_table_csv_and_a_revoked_one_does_not(client):
    study = StudyFactory(name="scripted", state=Study.State.OPEN, pools=(3, 1))
    client.force_login(researcher_of(study))
    page = client.get("/accounts/api-token/")
    assert page.status_code == 200 and b"You have no token" in page.content
    made = client.post("/accounts/api-token/", {"action": "create"})
    key = made.context["new_key"]
    assert len(key) == 40 and key.encode() in made.content  # shown once, on creation
    assert key.encode() not in client.get("/accounts/api-token/").content

    table = _table(study, key)
    assert table.status_code == 200 and table["Content-Type"].startswith("text/csv")
    assert table.content.decode().splitlines()[0].startswith("reader,")

    replaced = client.post("/accounts/api-token/", {"action": "create"}).context["new_key"]
    assert _refused(_table(study, key)) and _table(study, replaced).status_code == 200
    client.post("/accounts/api-token/", {"action": "revoke"})
    assert _refused(_table(study, replaced)) and _refused(_table(study, "not-a-token"))


def test_readers_get_no_token_page(client):
    client.force_login(UserFactory(role="readers"))
    assert client.get("/accounts/api-token/").status_code == 403
