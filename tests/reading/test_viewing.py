"""Viewing conditions (issue #23): the display check's pattern, its answer and the screen recorded
once per session, each call's scale factor and full screen, and all of it in the exports."""

import csv
import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from readerstudy.reading.models import DisplayCheck, Reader, ReadingSession, Study, Trial
from readerstudy.reading.viewing import (
    DISPLAY_CHECK_SIZE,
    ViewingConditions,
    ViewingInvalid,
    browser_name,
    display_check_pixels,
    display_check_png,
)
from readerstudy.results.exports import calls_csv, study_bundle
from tests.factories import StudyFactory, UserFactory, researcher_of

pytestmark = pytest.mark.django_db

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.8078.73 Safari/537.36"
SCREEN = {
    "screen_width_px": 1920,
    "screen_height_px": 1080,
    "window_width_px": 1280,
    "window_height_px": 900,
    "device_pixel_ratio": 1.25,
}


@pytest.fixture
def study():
    return StudyFactory(name="viewing", state=Study.State.OPEN, pools=(3, 1), pools__image_size=64)


def _reader(client, study):
    user = UserFactory(role="readers")
    Reader.objects.create(user=user, study=study)
    client.force_login(user)
    return user


def _post(client, url, body, **headers):
    return client.post(url, body, content_type="application/json", **headers)


def test_the_display_check_holds_grey_steps_and_both_low_contrast_targets():
    pixels = display_check_pixels()
    assert pixels.shape == (DISPLAY_CHECK_SIZE, DISPLAY_CHECK_SIZE) and pixels.dtype == np.uint8
    steps = pixels[0, :: DISPLAY_CHECK_SIZE // 16]
    assert steps.tolist() == [round(i * 255 / 15) for i in range(16)]  # 0, 17, …, 255
    left, right = pixels[:, : DISPLAY_CHECK_SIZE // 2], pixels[:, DISPLAY_CHECK_SIZE // 2 :]
    # 13 on 0 on the left, 242 on 255 on the right: each target touches its patch, nothing else.
    for half, patch, target in ((left, 0, 13), (right, 255, 242)):
        rows, columns = np.nonzero(half == target)
        assert rows.size > 64
        box = half[rows.min() - 1 : rows.max() + 2, columns.min() - 1 : columns.max() + 2]
        ring = np.concatenate([box[0], box[-1], box[:, 0], box[:, -1]])
        assert set(ring.tolist()) == {patch}
    decoded = np.array(Image.open(io.BytesIO(display_check_png())))
    assert np.array_equal(decoded, pixels)  # the PNG carries the 8-bit values unchanged
    assert Image.open(io.BytesIO(display_check_png())).info == {}  # no gamma, no colour profile


def test_the_display_check_image_is_served_to_signed_in_users(client):
    assert client.get("/reading/display-check.png").status_code == 302  # to the login page
    client.force_login(UserFactory(role="readers"))
    response = client.get("/reading/display-check.png")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response.content == display_check_png()


def test_a_sessions_viewing_conditions_are_recorded_once_with_the_browser(client, study):
    user = _reader(client, study)
    state = client.get(f"/api/v1/me/session?study={study.pk}").json()
    assert state["display_check_needed"] is True
    url = f"/api/v1/me/viewing?study={study.pk}"
    first = _post(client, url, SCREEN | {"display_check": "dark_missed"}, HTTP_USER_AGENT=CHROME)
    assert first.status_code == 201 and first.json()["recorded"] is True
    again = _post(client, url, SCREEN | {"window_width_px": 600, "display_check": "both_seen"}, HTTP_USER_AGENT="x")
    assert again.status_code == 200 and again.json()["recorded"] is False
    assert again.json()["display_check"] == "dark_missed"  # the first answer is the evidence
    session = ReadingSession.objects.get(reader__user=user)
    assert (session.screen_width_px, session.window_width_px, session.device_pixel_ratio) == (1920, 1280, 1.25)
    assert session.browser == CHROME and session.display_check == DisplayCheck.DARK_MISSED
    assert session.viewing_recorded_at is not None
    assert client.get(f"/api/v1/me/session?study={study.pk}").json()["display_check_needed"] is False


@pytest.mark.parametrize(
    "change",
    [{"display_check": "maybe"}, {"device_pixel_ratio": 0}, {"window_width_px": 0}, {"screen_height_px": "tall"}],
)
def test_impossible_viewing_conditions_are_refused_and_nothing_is_kept(client, study, change):
    user = _reader(client, study)
    response = _post(client, f"/api/v1/me/viewing?study={study.pk}", SCREEN | {"display_check": "both_seen"} | change)
    assert response.status_code == 400
    session = ReadingSession.objects.get(reader__user=user)
    assert session.display_check == "" and session.screen_width_px is None


def test_the_conditions_rule_is_one_routine():
    with pytest.raises(ViewingInvalid, match="device pixel ratio"):
        ViewingConditions(**SCREEN | {"device_pixel_ratio": 40.0}, display_check="both_seen").validate()


def test_a_call_keeps_its_scale_factor_and_full_screen(client, study):
    user = _reader(client, study)
    state = client.get(f"/api/v1/me/session?study={study.pk}").json()
    client.get(state["image_url"])
    calls = f"/api/v1/me/calls?study={study.pk}"
    refused = _post(client, calls, {"token": state["token"], "call": "real", "scale_factor": 0})
    assert refused.status_code == 400 and "scale factor" in str(refused.json()["call"])
    body = {"token": state["token"], "call": "real", "scale_factor": 8, "full_screen": True}
    assert _post(client, calls, body).status_code == 201
    state = client.get(f"/api/v1/me/session?study={study.pk}").json()
    client.get(state["image_url"])
    assert _post(client, calls, {"token": state["token"], "call": "synthetic"}).status_code == 201  # an API client
    trials = Trial.objects.filter(session__reader__user=user).exclude(call="").order_by("position")
    assert list(trials.values_list("scale_factor", "full_screen")) == [(8, True), (None, None)]


def test_calls_csv_the_bundle_and_the_study_page_show_the_viewing_conditions(client, study):
    _reader(client, study)
    viewing = SCREEN | {"display_check": "both_seen"}
    _post(client, f"/api/v1/me/viewing?study={study.pk}", viewing, HTTP_USER_AGENT=CHROME)
    for scale_factor, full_screen in ((8, False), (6, True)):
        state = client.get(f"/api/v1/me/session?study={study.pk}").json()
        client.get(state["image_url"])
        body = {"token": state["token"], "call": "real", "scale_factor": scale_factor, "full_screen": full_screen}
        _post(client, f"/api/v1/me/calls?study={study.pk}", body)

    rows = list(csv.DictReader(io.StringIO(calls_csv(study=study))))
    assert [(row["scale_factor"], row["full_screen"]) for row in rows] == [("8", "False"), ("6", "True")]
    assert {row["screen_css_px"] for row in rows} == {"1920x1080"} and rows[0]["window_css_px"] == "1280x900"
    assert rows[0]["device_pixel_ratio"] == "1.25" and rows[0]["browser"] == CHROME
    assert rows[0]["display_check"] == "both_seen"

    with zipfile.ZipFile(io.BytesIO(study_bundle(study=study))) as bundle:
        name = next(n for n in bundle.namelist() if n.endswith("sessions.json"))
        viewing = json.loads(bundle.read(name))[0]["viewing_conditions"]
    assert viewing["screen_css_px"] == "1920x1080" and viewing["display_check"] == "both_seen"
    assert viewing["recorded_at"]

    client.force_login(researcher_of(study))
    page = client.get(f"/results/{study.pk}/").content.decode()
    assert "Viewing conditions" in page and "Chrome 156" in page and "saw both patches" in page
    assert "×6–×8" in page and "1 of 2 calls" in page


def test_a_dry_run_asks_for_the_check_and_records_nothing(client, study):
    client.force_login(UserFactory(role="admins"))
    client.post(f"/reading/{study.pk}/dry-run/")
    state_url = f"/api/v1/studies/{study.pk}/dry-run/session"
    assert client.get(state_url).json()["display_check_needed"] is True
    answered = _post(client, f"/api/v1/studies/{study.pk}/dry-run/viewing", SCREEN | {"display_check": "both_seen"})
    assert answered.status_code == 200 and answered.json()["recorded"] is False
    assert client.get(state_url).json()["display_check_needed"] is False
    assert not ReadingSession.objects.exists()
    client.post(f"/reading/{study.pk}/dry-run/")  # a fresh dry run checks again
    assert client.get(state_url).json()["display_check_needed"] is True


@pytest.mark.parametrize(
    ("user_agent", "name"),
    [
        (CHROME, "Chrome 156"),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0", "Firefox 140"),
        ("Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Safari/605.1.15", "Safari 18"),
        (CHROME + " Edg/150.0.1", "Edge 150"),
    ],
)
def test_browser_names_for_people(user_agent, name):
    assert browser_name(user_agent) == name
