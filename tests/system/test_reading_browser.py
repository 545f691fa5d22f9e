"""The reading flow in a real browser (Playwright driving Debian's Chromium) against Django's live
server: invitation → password → consent → the display check → training with feedback → 50 images
by keyboard → thank-you; an image left alone is hidden at the limit and recorded expired; a closed
tab resumes at the next trial; an admin's dry run records nothing."""

import time

import pytest
from playwright.sync_api import expect

from generator.models import BankImage
from readerstudy.reading.models import Reader, ReadingSession, Trial
from readerstudy.reading.readers import invitation_url, reader_add
from tests.factories import UserFactory
from tests.system.reading_pages import (
    PASSWORD,
    answer_display_check,
    log_in,
    open_study,
    start_reading,
    wait_for_image,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_reader_goes_from_invitation_to_thank_you_by_keyboard(page, live_server):
    study = open_study(
        name="Browser study",
        per_session=50,
        training=10,
        time_limit_s=10.0,
        consent_text="I agree that my calls are used for research.",
        instructions="Call each brain MR image real or synthetic.",
    )
    reader = reader_add(study=study, username="reader-one", email="r1@example.org", role="neuroradiologist")

    page.goto(invitation_url(reader=reader, base_url=live_server.url))
    expect(page.locator("h1")).to_have_text("Set your password")
    page.fill("#id_new_password1", PASSWORD)
    page.fill("#id_new_password2", PASSWORD)
    page.click("main button[type=submit]")

    expect(page.locator("h1")).to_contain_text("consent")  # landed on the study, consent first
    page.check("input[name=accept]")
    page.click("main button[type=submit]")
    expect(page.locator("h1")).to_have_text("Browser study")
    page.click("text=Begin")

    # The display check, by keyboard: its first answer has the focus.
    expect(page.locator("#display-check")).to_be_visible()
    expect(page.locator("#display-check button[data-answer=both_seen]")).to_be_focused()
    page.keyboard.press("Enter")

    feedback_seen = 0
    for index in range(1, 11):
        wait_for_image(page, f"Practice {index} of 10")
        page.keyboard.press("r" if index % 2 else "s")
        panel = page.locator("#panel-text")
        expect(panel).to_contain_text("this image is")
        feedback_seen += 1
        page.keyboard.press("Space")

    for index in range(1, 51):
        wait_for_image(page, f"Image {index} of 50")
        if index == 25:
            assert page.locator("#panel").is_hidden()  # no feedback in the main phase
        page.keyboard.press("s" if index % 3 else "r")

    expect(page.locator("h1")).to_have_text("Thank you")
    trials = Trial.objects.filter(session__reader=reader)
    assert trials.count() == 60 and not trials.filter(call="").exists()
    assert trials.filter(phase="main", call="real").count() == len([i for i in range(1, 51) if i % 3 == 0])
    assert feedback_seen == 10
    assert ReadingSession.objects.get(reader=reader).finished_at is not None
    assert Reader.objects.get(pk=reader.pk).consent_accepted_at is not None


def test_an_image_left_alone_is_hidden_at_the_limit_and_recorded_expired(page, live_server):
    study = open_study(name="Expiry", per_session=3, training=0, time_limit_s=2.0)
    user = start_reading(page, live_server.url, study)

    wait_for_image(page, "Image 1 of 3")
    page.keyboard.press("r")
    wait_for_image(page, "Image 2 of 3")
    shown = time.monotonic()
    expect(page.locator("#panel-text")).to_have_text("Time is up: this image counts as unanswered.", timeout=5000)
    hidden_after = time.monotonic() - shown
    expect(page.locator("#trial-image")).to_be_hidden()
    assert 1.5 < hidden_after < 3.5
    wait_for_image(page, "Image 3 of 3")  # moved on by itself
    page.keyboard.press("s")
    expect(page.locator("h1")).to_have_text("Thank you")
    outcomes = list(Trial.objects.filter(session__reader__user=user).values_list("call", "expired"))
    assert outcomes == [("real", False), ("", True), ("synthetic", False)]


def test_a_closed_tab_resumes_at_the_next_trial(browser, live_server):
    study = open_study(name="Resume", per_session=4, training=0, time_limit_s=2.0)
    context = browser.new_context()
    page = context.new_page()
    user = start_reading(page, live_server.url, study)
    wait_for_image(page, "Image 1 of 4")
    page.keyboard.press("r")
    wait_for_image(page, "Image 2 of 4")
    page.close()  # the tab closes while image 2 is on screen; its clock runs on

    time.sleep(3.5)
    page = context.new_page()
    page.goto(f"{live_server.url}/reading/{study.pk}/read")
    wait_for_image(page, "Image 3 of 4")  # no display check again: once per session
    context.close()
    second = Trial.objects.get(session__reader__user=user, position=1)
    assert second.expired and second.call == ""


def test_a_reload_keeps_the_clock_running(page, live_server):
    study = open_study(name="Reload", per_session=2, training=0, time_limit_s=6.0)
    start_reading(page, live_server.url, study)
    wait_for_image(page, "Image 1 of 2")
    time.sleep(2.5)
    page.reload()
    wait_for_image(page, "Image 1 of 2")  # the same trial, not a fresh one
    left = float(page.locator("#countdown").inner_text().split()[0])
    assert left < 4.5  # the countdown goes on from where it was, it did not restart at 6


def test_an_admins_dry_run_records_nothing(page, live_server):
    study = open_study(name="Dry", per_session=4, training=2, time_limit_s=10.0, consent_text="Consent here.")
    admin = UserFactory(role="admins", password=PASSWORD)
    log_in(page, live_server.url, admin.username, PASSWORD)
    page.goto(f"{live_server.url}/reading/{study.pk}/dry-run/")
    expect(page.locator("body")).to_contain_text("Consent here.")
    page.click("text=Start the dry run")
    expect(page.locator(".dry-run-banner")).to_be_visible()
    answer_display_check(page)
    for index in range(1, 3):
        wait_for_image(page, f"Practice {index} of 2")
        page.keyboard.press("r")
        expect(page.locator("#panel-text")).to_contain_text("this image is")  # training feedback, as readers get
        page.keyboard.press("Space")
    for index in range(1, 5):
        wait_for_image(page, f"Image {index} of 4")
        page.keyboard.press("s")
    expect(page.locator("h1")).to_have_text("Dry run finished")
    assert not Reader.objects.exists() and not ReadingSession.objects.exists() and not Trial.objects.exists()
    assert not BankImage.objects.filter(first_shown_at__isnull=False).exists()


def test_confidence_is_asked_before_a_call_and_a_reason_is_kept(page, live_server):
    study = open_study(
        name="Confident", per_session=2, training=0, time_limit_s=None, ask_confidence=True, ask_reason=True
    )
    user = start_reading(page, live_server.url, study)
    wait_for_image(page, "Image 1 of 2")
    assert page.locator("#countdown").inner_text() == ""  # no limit, no countdown
    page.keyboard.press("s")
    expect(page.locator("#message")).to_have_text("Choose your confidence (1–5) first.")
    page.keyboard.press("4")
    page.fill("#reason", "grid-like texture")  # typing R or S in the reason box is not a call
    page.locator("#trial-image").click()  # leave the text box, as a reader would
    page.keyboard.press("s")
    wait_for_image(page, "Image 2 of 2")
    page.click("button.call.real")
    expect(page.locator("#message")).to_have_text("Choose your confidence (1–5) first.")
    page.click("input[name=confidence][value='1']")
    page.click("button.call.real")
    expect(page.locator("h1")).to_have_text("Thank you")
    calls = list(Trial.objects.filter(session__reader__user=user).values_list("call", "confidence", "reason"))
    assert calls == [("synthetic", 4, "grid-like texture"), ("real", 1, "")]
