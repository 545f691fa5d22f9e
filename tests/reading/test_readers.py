"""Studies and readers: creating them (commands, API, admin), inviting readers (links, e-mail,
password reset), consent, progress, evidence settings that freeze, dry runs that record nothing."""

import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from generator.models import BankImage
from readerstudy.core.errors import EvidenceFrozen
from readerstudy.reading.models import Reader, ReadingSession, Study, Trial
from readerstudy.reading.readers import ReaderError, invitation_url, reader_add, reader_progress
from readerstudy.reading.sessions import session_build, study_open
from tests.factories import REAL, SYNTHETIC, StudyFactory, UserFactory, bank_images, researcher_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def study() -> Study:
    study = StudyFactory(name="Readers", consent_text="I agree.", show_score_after=True, pools=(3, 1))
    return study_open(study=study)


def test_an_invitation_sets_a_password_signs_in_and_lands_on_the_study(client, study):
    reader = reader_add(study=study, username="newcomer", email="n@example.org", role="resident", years_experience=3)
    assert not reader.user.has_usable_password()
    link = invitation_url(reader=reader, base_url="http://testserver")
    form_page = client.get(link, follow=True)
    assert b"Set your password" in form_page.content
    landed = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "a-long-reader-passphrase", "new_password2": "a-long-reader-passphrase"},
        follow=True,
    )
    assert landed.request["PATH_INFO"] == f"/reading/{study.pk}/consent"  # signed in, on the study
    assert client.get(link, follow=True).context["validlink"] is False  # works once


def test_a_weak_password_is_refused_by_djangos_validators(client, study):
    reader = reader_add(study=study, username="weak")
    form_page = client.get(invitation_url(reader=reader, base_url="http://testserver"), follow=True)
    response = client.post(form_page.redirect_chain[-1][0], {"new_password1": "123", "new_password2": "123"})
    assert response.status_code == 200 and b"too short" in response.content


def test_invitations_are_emailed_through_djangos_backend(study, mailoutbox):
    call_command("add_reader", study.name, "mailed", "--email", "m@example.org", "--role", "neuroradiologist", "--send")
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["m@example.org"]
    assert re.search(r"http://127.0.0.1:8000/accounts/reset/\S+/\S+/", mailoutbox[0].body)
    assert Reader.objects.get(user__username="mailed").invited_at is not None


def test_password_reset_sends_a_link_that_works(client, study, mailoutbox):
    reader = reader_add(study=study, username="forgetful", email="f@example.org")
    client.post("/accounts/password-reset/", {"email": "f@example.org"})
    assert len(mailoutbox) == 0  # an account without a usable password gets no reset mail: it needs an invitation
    reader.user.set_password("old-passphrase-long")
    reader.user.save()
    client.post("/accounts/password-reset/", {"email": "f@example.org"})
    link = re.search(r"http://testserver(\S+)", mailoutbox[0].body).group(1)
    assert b"Set your password" in client.get(link, follow=True).content


def test_add_reader_refuses_unknown_studies_duplicates_and_non_readers(study, capsys):
    call_command("add_reader", study.name, "once")
    assert "Invitation link: http://127.0.0.1:8000/accounts/reset/" in capsys.readouterr().out
    with pytest.raises(CommandError, match="already reads"):
        call_command("add_reader", study.name, "once")
    with pytest.raises(CommandError, match="No study named"):
        call_command("add_reader", "nope", "someone")
    UserFactory(username="boss", role="admins")
    with pytest.raises(CommandError, match="one of the admins"):
        call_command("add_reader", study.name, "boss")


def test_create_study_keeps_the_papers_defaults_fills_pools_and_opens(capsys):
    bank_images(60, REAL, size=16), bank_images(60, SYNTHETIC, size=16)
    call_command("create_study", "Paper", "--pools-from-bank", "--open", "--seed", "1")
    study = Study.objects.get(name="Paper")
    assert (study.images_per_session, study.synthetic_min, study.synthetic_max) == (50, 20, 30)
    assert (study.time_limit_s, study.training_images, study.training_feedback) == (10.0, 10, True)
    assert study.state == Study.State.OPEN
    reader = reader_add(study=study, username="paper-reader")
    session = session_build(reader=reader)
    assert len(session.main_order) == 50 and len(session.training_order) == 10
    with pytest.raises(CommandError, match="synthetic range"):
        call_command("create_study", "Bad", "--synthetic-min", "40", "--synthetic-max", "30")
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_study", "Paper")


def test_evidence_settings_freeze_once_a_session_started(study):
    study.time_limit_s = 20
    study.save()  # nobody has started: still free
    session_build(reader=reader_add(study=study, username="starter"))
    study.refresh_from_db()
    study.time_limit_s = 5
    with pytest.raises(EvidenceFrozen, match="time_limit_s"):
        study.save()
    study.refresh_from_db()
    study.instructions = "Clearer words."  # not evidence: may change
    study.save()


def test_progress_follows_the_reader(client, study):
    reader = reader_add(study=study, username="progressing")
    assert reader_progress(reader=reader).status == "not started"
    client.force_login(reader.user)
    client.post(f"/reading/{study.pk}/consent", {"accept": "yes"})
    state = client.get(f"/api/v1/me/session?study={study.pk}").json()
    client.get(state["image_url"])
    client.post(
        f"/api/v1/me/calls?study={study.pk}", {"token": state["token"], "call": "real"}, content_type="application/json"
    )
    progress = reader_progress(reader=reader)
    assert (progress.status, progress.done, progress.total) == ("reading", 1, 6)


def test_reading_needs_consent_first_and_refusing_keeps_the_reader_out(client, study):
    reader = reader_add(study=study, username="careful")
    client.force_login(reader.user)
    assert client.get(f"/reading/{study.pk}/read")["Location"] == f"/reading/{study.pk}/consent"
    client.post(f"/reading/{study.pk}/consent", {})
    assert not ReadingSession.objects.filter(reader=reader).exists()
    client.post(f"/reading/{study.pk}/consent", {"accept": "yes"})
    assert client.get(f"/reading/{study.pk}/read").status_code == 200
    assert ReadingSession.objects.filter(reader=reader).exists()


def test_the_thank_you_page_shows_the_score_only_when_the_study_allows_it(client, study):
    reader = reader_add(study=study, username="finisher")
    client.force_login(reader.user)
    client.post(f"/reading/{study.pk}/consent", {"accept": "yes"})
    while (state := client.get(f"/api/v1/me/session?study={study.pk}").json())["phase"] != "finished":
        client.get(state["image_url"])
        client.post(
            f"/api/v1/me/calls?study={study.pk}",
            {"token": state["token"], "call": "real"},
            content_type="application/json",
        )
    page = client.get(f"/reading/{study.pk}/thanks").content.decode()
    assert "Your score: 2 of 4" in page  # called everything real: the 2 real images right
    Study.objects.filter(pk=study.pk).update(show_score_after=False)
    assert "Your score" not in client.get(f"/reading/{study.pk}/thanks").content.decode()


def test_an_api_dry_run_records_nothing(client, study):
    client.force_login(UserFactory(role="admins"))
    client.post(f"/reading/{study.pk}/dry-run/")
    calls = 0
    while (state := client.get(f"/api/v1/studies/{study.pk}/dry-run/session").json())["phase"] != "finished":
        assert client.get(state["image_url"]).status_code == 200
        response = client.post(
            f"/api/v1/studies/{study.pk}/dry-run/calls",
            {"token": state["token"], "call": "synthetic"},
            content_type="application/json",
        )
        assert response.status_code == 201
        calls += 1
    assert calls == 6
    assert not (Reader.objects.exists() or ReadingSession.objects.exists() or Trial.objects.exists())
    assert not BankImage.objects.filter(first_shown_at__isnull=False).exists()


def test_the_studies_and_readers_api_admins_write_researchers_read(client, study, mailoutbox):
    client.force_login(researcher_of(study))
    listed = client.get("/api/v1/studies/").json()
    assert listed[0]["name"] == "Readers" and listed[0]["pools"]["main_real"] == 3
    assert client.post("/api/v1/studies/", {"name": "x"}, content_type="application/json").status_code == 403
    client.force_login(UserFactory(role="admins"))
    created = client.post(
        "/api/v1/studies/", {"name": "API study", "time_limit_s": None}, content_type="application/json"
    )
    assert created.status_code == 201 and created.json()["images_per_session"] == 50
    added = client.post(
        "/api/v1/readers/",
        {
            "study": study.pk,
            "username": "api-reader",
            "email": "a@example.org",
            "role": "resident",
            "send_invitation": True,
        },
        content_type="application/json",
    )
    assert added.status_code == 201 and added.json()["progress"]["status"] == "not started"
    assert len(mailoutbox) == 1
    link = client.post(f"/api/v1/readers/{added.json()['id']}/invitation/").json()
    assert "/accounts/reset/" in link["url"] and link["emailed"] is False
    readers = client.get(f"/api/v1/readers/?study={study.pk}").json()
    assert [r["username"] for r in readers] == ["api-reader"]
    session_build(reader=Reader.objects.get(user__username="api-reader"))
    frozen = client.patch(f"/api/v1/studies/{study.pk}/", {"images_per_session": 10}, content_type="application/json")
    assert frozen.status_code == 409 and "images_per_session" in frozen.json()["detail"]


def test_the_admin_study_page_shows_progress_and_freezes_evidence_fields(client, study):
    reader = reader_add(study=study, username="shown")
    session_build(reader=reader)
    client.force_login(UserFactory(role="admins"))
    page = client.get(f"/admin/readerstudy/study/{study.pk}/change/").content.decode()
    assert "0/6 reading" in page and "dry-run" in page
    assert 'name="time_limit_s"' not in page  # read-only once a reader has started
    assert 'name="instructions"' in page


def test_reader_add_refuses_an_unknown_role(study):
    with pytest.raises(ReaderError, match="Unknown reader role"):
        reader_add(study=study, username="x", role="surgeon")


def test_the_admins_reader_forms_refuse_admins_and_researchers(client, study):
    client.force_login(UserFactory(role="admins"))
    researcher = UserFactory(role="researchers")
    response = client.post(
        "/admin/readerstudy/reader/add/",
        {"user": researcher.pk, "study": study.pk, "role": "other", "years_experience": 0},
    )
    assert response.status_code == 200 and "who see results and answers" in response.content.decode()
    assert not Reader.objects.filter(user=researcher).exists()
    with pytest.raises(ReaderError, match="one of the researchers"):
        reader_add(study=study, username=researcher.username)


def test_a_reader_of_an_open_study_cannot_become_an_admin_or_researcher(study):
    from django.contrib.auth.models import Group
    from django.db import transaction

    from readerstudy.core.roles import Role, user_set_role

    user = reader_add(study=study, username="blinded").user
    with pytest.raises(ReaderError, match="reads the open study"):
        user_set_role(user=user, role=Role.RESEARCHER)
    with pytest.raises(ReaderError, match="reads the open study"), transaction.atomic():
        Group.objects.get_or_create(name="admins")[0].user_set.add(user)
    user.refresh_from_db()
    user.is_staff = True
    with pytest.raises(ReaderError, match="one of the admins"):
        user.save()
    user.refresh_from_db()
    assert not user.is_staff and set(user.groups.values_list("name", flat=True)) == {"readers"}
    study.state = Study.State.CLOSED
    study.save()
    user_set_role(user=user, role=Role.RESEARCHER)  # once the study is closed, a role may change


def test_dry_runs_and_readers_follow_the_same_call_rules_through_the_api(client):
    study = study_open(study=StudyFactory(name="Confident", ask_confidence=True, pools=(3, 1)))
    client.force_login(UserFactory(role="admins"))
    client.post(f"/reading/{study.pk}/dry-run/")
    state = client.get(f"/api/v1/studies/{study.pk}/dry-run/session").json()
    client.get(state["image_url"])
    url = f"/api/v1/studies/{study.pk}/dry-run/calls"
    for body, refusal in (
        ({"call": "real"}, "asks for a confidence"),
        ({"call": "real", "confidence": 4, "reason": "texture"}, "does not ask for a reason"),
    ):
        response = client.post(url, {"token": state["token"], **body}, content_type="application/json")
        assert response.status_code == 400 and refusal in str(response.json())
    response = client.post(
        url, {"token": state["token"], "call": "real", "confidence": 4}, content_type="application/json"
    )
    assert response.status_code == 201

    reader = reader_add(study=study, username="confident-reader")
    client.force_login(reader.user)
    client.post(f"/reading/{study.pk}/consent/", {"accept": "on"})
    state = client.get(f"/api/v1/me/session?study={study.pk}").json()
    client.get(state["image_url"])
    response = client.post(
        f"/api/v1/me/calls?study={study.pk}", {"token": state["token"], "call": "real"}, content_type="application/json"
    )
    assert response.status_code == 400 and "asks for a confidence" in str(response.json())
    assert not Trial.objects.exclude(call="").exists()
