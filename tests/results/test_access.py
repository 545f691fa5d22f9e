"""Access by study (issue #26): a researcher sees the results, exports and observer button of the
studies they are assigned to, and nothing of the others (404, as for a study that does not exist);
admins assign them in the admin and the API; admins see every study."""

import pytest

from readerstudy.reading.models import Study
from readerstudy.results.models import MachineObserverJob
from tests.factories import StudyFactory, UserFactory, researcher_of

pytestmark = pytest.mark.django_db

EXPORTS = ["results/table/?format=csv", "results/calls/?format=csv", "results/imrmc/", "results/bundle/"]


@pytest.fixture
def studies():
    return (
        StudyFactory(name="Mine", state=Study.State.OPEN, pools=(3, 1)),
        StudyFactory(name="Theirs", state=Study.State.OPEN, pools=(3, 1)),
    )


def test_a_researcher_sees_only_the_studies_they_are_assigned_to(client, studies):
    mine, theirs = studies
    client.force_login(researcher_of(mine))
    assert [study["name"] for study in client.get("/api/v1/studies/").json()] == ["Mine"]
    home = client.get("/results/").content.decode()
    assert "Mine" in home and "Theirs" not in home
    for study, expected in ((mine, 200), (theirs, 404)):
        assert client.get(f"/results/{study.pk}/").status_code == expected
        assert client.get(f"/results/{study.pk}/accuracy.png").status_code == expected
        assert client.get(f"/api/v1/studies/{study.pk}/").status_code == expected
        for export in EXPORTS:
            assert client.get(f"/api/v1/studies/{study.pk}/{export}").status_code == expected, export
    assert client.post(f"/results/{theirs.pk}/machine-observer").status_code == 404
    assert not MachineObserverJob.objects.filter(study=theirs).exists()
    assert client.get(f"/api/v1/readers/?study={theirs.pk}").json() == []


def test_admins_assign_researchers_in_the_api_and_the_admin_and_see_every_study(client, studies):
    mine, theirs = studies
    researcher = UserFactory(role="researchers", username="r-one")
    client.force_login(UserFactory(role="admins"))
    assert {study["name"] for study in client.get("/api/v1/studies/").json()} == {"Mine", "Theirs"}
    url = f"/api/v1/studies/{theirs.pk}/"
    patched = client.patch(url, {"researchers": ["r-one"]}, content_type="application/json")
    assert patched.status_code == 200 and patched.json()["researchers"] == ["r-one"]
    reader = UserFactory(role="readers", username="a-reader")
    refused = client.patch(
        f"/api/v1/studies/{theirs.pk}/", {"researchers": ["a-reader"]}, content_type="application/json"
    )
    assert refused.status_code == 400  # only researchers can be assigned
    page = client.get(f"/admin/readerstudy/study/{mine.pk}/change/").content.decode()
    assert 'name="researchers"' in page and "r-one" in page and reader.username not in page

    client.force_login(researcher)
    assert client.get(f"/results/{theirs.pk}/").status_code == 200
    assert client.get(f"/results/{mine.pk}/").status_code == 404


def test_create_study_opens_the_results_to_named_researchers_and_refuses_others():
    from django.core.management import CommandError, call_command

    UserFactory(role="researchers", username="r-two")
    call_command("create_study", "Commanded", "--researcher", "r-two")
    assert list(Study.objects.get(name="Commanded").researchers.values_list("username", flat=True)) == ["r-two"]
    with pytest.raises(CommandError, match="Not researchers: nobody"):
        call_command("create_study", "Commanded too", "--researcher", "nobody")
