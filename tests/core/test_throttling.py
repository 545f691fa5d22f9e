"""Accounts that resist guessing (issue #26): the login locks out after five wrong passwords per
account and per address, with a message, until an admin unlocks it; reset links are limited per
address and account; the API is throttled, except a reader's session, which never is."""

import pytest
from axes.models import AccessAttempt
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from readerstudy.core.accounts import PASSWORD_RESETS_PER_HOUR
from readerstudy.reading.models import Reader, Study
from tests.factories import StudyFactory, UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-reader-passphrase-42"


def _log_in(client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def test_the_sixth_wrong_password_locks_the_account_with_a_message_until_an_admin_unlocks_it(client):
    user = UserFactory(role="researchers", password=PASSWORD)
    for attempt in range(5):
        refused = _log_in(client, user.username, "wrong", address=f"10.0.1.{attempt}")
        assert refused.status_code == 200 and b"didn't match" in refused.content
    locked = _log_in(client, user.username, "wrong", address="10.0.1.9")
    assert locked.status_code == 429 and b"Too many failed logins" in locked.content
    assert _log_in(client, user.username, PASSWORD, address="10.0.2.1").status_code == 429  # even the right one

    client.force_login(UserFactory(role="admins"))
    attempts = client.get("/admin/axes/accessattempt/")
    assert attempts.status_code == 200 and user.username in attempts.content.decode()
    locks = list(AccessAttempt.objects.filter(username=user.username).values_list("pk", flat=True))
    unlocked = client.post(
        "/admin/axes/accessattempt/", {"action": "delete_selected", "_selected_action": locks, "post": "yes"}
    )
    assert unlocked.status_code == 302 and not AccessAttempt.objects.filter(username=user.username).exists()
    client.logout()
    assert _log_in(client, user.username, PASSWORD, address="10.0.2.1").status_code == 302  # in


def test_five_failures_from_one_address_lock_that_address_for_every_account(client):
    victims = [UserFactory(role="readers", password=PASSWORD) for _ in range(6)]
    for victim in victims[:5]:
        assert _log_in(client, victim.username, "guess", address="10.9.9.9").status_code == 200
    assert _log_in(client, victims[5].username, "guess", address="10.9.9.9").status_code == 429
    assert _log_in(client, victims[5].username, PASSWORD, address="10.9.9.9").status_code == 429
    assert _log_in(client, victims[5].username, PASSWORD, address="10.9.9.10").status_code == 302  # elsewhere: fine


def test_reset_links_are_limited_per_account(client, mailoutbox):
    user = UserFactory(role="readers", email="reader@example.org")
    for attempt in range(PASSWORD_RESETS_PER_HOUR):
        sent = client.post("/accounts/password-reset/", {"email": user.email}, REMOTE_ADDR=f"10.1.0.{attempt}")
        assert sent.status_code == 302
    refused = client.post("/accounts/password-reset/", {"email": "READER@example.org"}, REMOTE_ADDR="10.1.1.1")
    assert refused.status_code == 429 and b"Too many reset links" in refused.content
    assert len(mailoutbox) == PASSWORD_RESETS_PER_HOUR


def test_a_readers_whole_session_is_never_throttled_while_the_rest_of_the_api_is(client, monkeypatch):
    strict = {"user": "5/hour", "anon": "5/hour"}
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", strict)
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", strict)
    study = StudyFactory(
        name="Throttled", state=Study.State.OPEN, images_per_session=6, synthetic_min=3, synthetic_max=3, pools=(4, 1)
    )
    user = UserFactory(role="readers")
    Reader.objects.create(user=user, study=study)
    client.force_login(user)
    viewing = {"screen_width_px": 1920, "screen_height_px": 1080, "window_width_px": 1200, "window_height_px": 900}
    viewing |= {"device_pixel_ratio": 1.0, "display_check": "both_seen"}
    assert (
        client.post(f"/api/v1/me/viewing?study={study.pk}", viewing, content_type="application/json").status_code == 201
    )
    requests = 1
    while (state := client.get(f"/api/v1/me/session?study={study.pk}")).json()["phase"] != "finished":
        assert client.get(state.json()["image_url"]).status_code == 200
        call = {"token": state.json()["token"], "call": "real"}
        recorded = client.post(f"/api/v1/me/calls?study={study.pk}", call, content_type="application/json")
        assert recorded.status_code == 201
        requests += 2
    assert requests > 10  # twice the strict rate, none refused
    answers = [client.get("/api/v1/me/").status_code for _ in range(6)]
    assert answers == [200] * 5 + [429]  # the rest of the API is throttled
