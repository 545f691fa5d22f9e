"""The reading station (issue #23) in Chromium: images pixel-true at device pixel ratios 1, 1.25
and 2 and after the window or the zoom changes, full screen by F, the display check once per
session with its answer stored, viewing conditions as the browser reports them, a keyboard-only
session with visible focus, the countdown spoken at 5 s and 1 s only, and an axe-core scan."""

import base64
import io
import math
import time

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from generator.ml.rendering import decode_png_gray8
from readerstudy.reading.models import Reader, ReadingSession, Trial
from tests.factories import UserFactory
from tests.support import REPO
from tests.system.reading_pages import PASSWORD, answer_display_check, log_in, open_study, start_reading, wait_for_image

pytestmark = pytest.mark.django_db(transaction=True)

AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"  # npm axe-core, locked in package-lock.json
MATRIX = 64  # open_study's images
DISPLAY_SIZE_PX = 512  # the study's default room for an image, in CSS pixels


def _expected_k(ratio: float, width: int, height: int, matrix: int = MATRIX) -> int:
    return max(1, math.floor(min(DISPLAY_SIZE_PX * ratio, width * ratio, height * ratio) / matrix))


def _current_pixels(user) -> np.ndarray:
    """The 8-bit pixels of the image on the reader's screen, from the bank."""
    trial = Trial.objects.select_related("bank_image").get(
        session__reader__user=user, shown_at__isnull=False, call="", expired=False
    )
    with trial.bank_image.file.open("rb") as stored:
        return decode_png_gray8(stored.read())


def _screen(page: Page, devtools=None) -> np.ndarray:
    """The viewport as the screen shows it: [device row, device column, RGB]. Under a pixel ratio
    set through the DevTools protocol, the screenshot is taken there too: Playwright's own would
    put its context's ratio back first."""
    if devtools is None:
        png = page.screenshot(scale="device")
    else:
        png = base64.b64decode(devtools.send("Page.captureScreenshot", {"format": "png"})["data"])
    return np.array(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _assert_pixel_true(page: Page, source: np.ndarray, k: int, ratio: float, devtools=None) -> None:
    """Every source pixel is a k × k block of its own value on screen: whole factor, no smoothing."""
    expected = np.kron(source.astype(int), np.ones((k, k), dtype=int))[..., None].repeat(3, axis=2)  # grey: R = G = B
    screen = _screen(page, devtools)
    box = page.locator("#trial-image").bounding_box()
    assert box["width"] * ratio == pytest.approx(k * MATRIX, abs=0.01)
    top, left = round(box["y"] * ratio), round(box["x"] * ratio)
    placements = [
        screen[top + dy : top + dy + k * MATRIX, left + dx : left + dx + k * MATRIX]
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    ]
    assert any(np.array_equal(shown, expected) for shown in placements), "the image is not k × k blocks of its pixels"
    shown = next(shown for shown in placements if np.array_equal(shown, expected))
    # The sharpest edge of the source, across neighbouring screen pixels: the same step on screen.
    row, column = np.unravel_index(np.argmax(np.abs(np.diff(source.astype(int), axis=1))), (MATRIX, MATRIX - 1))
    y, x = row * k, (column + 1) * k
    assert (shown[y, x - 1, 0], shown[y, x, 0]) == (source[row, column], source[row, column + 1])


@pytest.mark.parametrize("ratio", [1, 1.25, 2])
def test_images_are_shown_pixel_true_at_any_device_pixel_ratio(browser, live_server, ratio):
    study = open_study(name=f"Pixels at {ratio}", per_session=2, training=0, time_limit_s=None)
    context = browser.new_context(viewport={"width": 1100, "height": 900}, device_scale_factor=ratio)
    page = context.new_page()
    user = start_reading(page, live_server.url, study)
    wait_for_image(page, "Image 1 of 2")
    k = _expected_k(ratio, 1100, 900)
    expect(page.locator("#scale-label")).to_have_text(f"×{k}")
    _assert_pixel_true(page, _current_pixels(user), k, ratio)
    page.keyboard.press("r")
    wait_for_image(page, "Image 2 of 2")
    first = Trial.objects.get(session__reader__user=user, position=0)
    assert (first.scale_factor, first.full_screen) == (k, False)
    context.close()


def test_the_scale_follows_the_window_and_the_zoom(browser, live_server):
    study = open_study(name="Rescaled", per_session=1, training=0, time_limit_s=None)
    context = browser.new_context(viewport={"width": 1100, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    user = start_reading(page, live_server.url, study)
    wait_for_image(page, "Image 1 of 1")
    expect(page.locator("#scale-label")).to_have_text("×8")
    page.set_viewport_size({"width": 300, "height": 900})  # a narrow window: 300 px wide
    expect(page.locator("#scale-label")).to_have_text(f"×{_expected_k(1, 300, 900)}")  # ×4
    _assert_pixel_true(page, _current_pixels(user), 4, 1)
    # Browser zoom changes the device pixel ratio: emulated here through the DevTools protocol.
    devtools = context.new_cdp_session(page)
    metrics = {"width": 300, "height": 900, "deviceScaleFactor": 2, "mobile": False}
    devtools.send("Emulation.setDeviceMetricsOverride", metrics)
    expect(page.locator("#scale-label")).to_have_text(f"×{_expected_k(2, 300, 900)}")  # ×9
    _assert_pixel_true(page, _current_pixels(user), 9, 2, devtools)
    context.close()


def test_the_display_check_comes_once_its_answer_and_the_screen_are_kept_and_f_goes_full_screen(browser, live_server):
    study = open_study(name="Station", per_session=3, training=0, time_limit_s=None)
    context = browser.new_context(viewport={"width": 1000, "height": 800}, device_scale_factor=1.25)
    page = context.new_page()
    user = UserFactory(role="readers", password=PASSWORD)
    Reader.objects.create(user=user, study=study)
    log_in(page, live_server.url, user.username, PASSWORD)
    page.goto(f"{live_server.url}/reading/{study.pk}/read")

    expect(page.locator("#display-check")).to_be_visible()
    expect(page.locator("#trial-image")).to_be_hidden()
    assert not Trial.objects.filter(shown_at__isnull=False).exists()  # no image's clock runs during the check
    check_box = page.locator("#display-check-image").bounding_box()
    assert check_box["width"] * 1.25 == pytest.approx(_expected_k(1.25, 1000, 800, matrix=128) * 128)  # pixel-true too
    page.click("text=Not the dark one")
    expect(page.locator("#display-check-advice-text")).to_contain_text("brightness up")
    page.click("#display-check-again")
    page.click("text=Not the dark one")
    page.click("#display-check-go-on")
    wait_for_image(page, "Image 1 of 3")

    reported = page.evaluate(
        "({screen: [screen.width, screen.height], window: [innerWidth, innerHeight],"
        " ratio: devicePixelRatio, agent: navigator.userAgent})"
    )
    session = ReadingSession.objects.get(reader__user=user)
    assert [session.screen_width_px, session.screen_height_px] == reported["screen"]
    assert [session.window_width_px, session.window_height_px] == reported["window"] == [1000, 800]
    assert session.device_pixel_ratio == reported["ratio"] == 1.25 and session.browser == reported["agent"]
    assert session.display_check == "dark_missed"

    page.keyboard.press("f")
    page.wait_for_function("document.fullscreenElement === document.querySelector('main')")
    expect(page.locator("#full-screen-button")).to_have_attribute("aria-pressed", "true")
    surround = page.evaluate("getComputedStyle(document.fullscreenElement).backgroundColor")
    assert surround == "rgb(0, 0, 0)"
    assert page.evaluate("getComputedStyle(document.getElementById('trial-image')).cursor") == "none"
    page.keyboard.press("r")
    wait_for_image(page, "Image 2 of 3")
    page.keyboard.press("f")
    page.wait_for_function("document.fullscreenElement === null")

    page.reload()  # once per session: no second check
    wait_for_image(page, "Image 2 of 3")
    expect(page.locator("#display-check")).to_be_hidden()
    page.keyboard.press("s")
    wait_for_image(page, "Image 3 of 3")
    page.click("#full-screen-button")
    page.wait_for_function("document.fullscreenElement !== null")
    page.keyboard.press("s")
    expect(page.locator("h1")).to_have_text("Thank you")
    shown = list(Trial.objects.filter(session__reader__user=user).values_list("full_screen", "scale_factor"))
    k = _expected_k(1.25, 1000, 800)
    assert [full for full, _ in shown] == [True, False, True]
    assert shown[1][1] == k  # the windowed call; full screen gives the image more room, not less
    assert all(scale >= k for _, scale in shown)
    assert ReadingSession.objects.get(pk=session.pk).display_check == "dark_missed"  # kept, not asked again
    context.close()


def _tab_to(page: Page, selector: str, presses: int = 25) -> None:
    """Tab until ``selector`` has the focus, as a keyboard user would; the focus must be visible."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate("(selector) => document.activeElement.matches(selector)", selector):
            outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
            assert outline != "none", f"the focus on {selector} is not visible"
            return
    pytest.fail(f"Tab never reached {selector}")


def test_a_keyboard_only_session_completes_with_visible_focus(page, live_server):
    study = open_study(
        name="Keyboard", per_session=2, training=2, time_limit_s=None, consent_text="I agree to take part."
    )
    user = UserFactory(role="readers", password=PASSWORD)
    Reader.objects.create(user=user, study=study)
    page.goto(f"{live_server.url}/accounts/login/")
    _tab_to(page, "#id_username")
    page.keyboard.type(user.username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_contain_text("consent")
    _tab_to(page, "input[name=accept]")
    page.keyboard.press("Space")
    _tab_to(page, "main button[type=submit]")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Keyboard")  # the instructions
    _tab_to(page, "a.button")  # Begin
    page.keyboard.press("Enter")
    expect(page.locator("#display-check button[data-answer=both_seen]")).to_be_focused()
    _tab_to(page, "#display-check button[data-answer=light_missed]")
    page.keyboard.press("Enter")
    expect(page.locator("#display-check-go-on")).to_be_focused()
    page.keyboard.press("Enter")
    for index in (1, 2):
        wait_for_image(page, f"Practice {index} of 2")
        page.keyboard.press("r")
        expect(page.locator("#panel-text")).to_contain_text("this image is")
        page.keyboard.press("Space")
    for index in (1, 2):
        wait_for_image(page, f"Image {index} of 2")
        page.keyboard.press("s")
    expect(page.locator("h1")).to_have_text("Thank you")
    assert ReadingSession.objects.get(reader__user=user).display_check == "light_missed"
    assert Trial.objects.filter(session__reader__user=user).exclude(call="").count() == 4


def test_the_countdown_is_spoken_at_five_seconds_and_one_only_and_runs_on_out_of_full_screen(page, live_server):
    study = open_study(name="Spoken", per_session=1, training=0, time_limit_s=6.0)
    start_reading(page, live_server.url, study)
    page.evaluate(
        """() => {
          const announcer = document.getElementById("countdown-announcer");
          window.spoken = [];
          new MutationObserver(() => announcer.textContent && window.spoken.push(announcer.textContent))
            .observe(announcer, { childList: true, characterData: true, subtree: true });
        }"""
    )
    wait_for_image(page, "Image 1 of 1")
    shown = time.monotonic()
    assert page.locator("#countdown").get_attribute("aria-hidden") == "true"  # the tenths are not read out
    page.keyboard.press("f")  # into full screen and out again mid-trial: the clock runs on
    page.wait_for_function("document.fullscreenElement !== null")
    page.keyboard.press("f")
    page.wait_for_function("document.fullscreenElement === null")
    expect(page.locator("#panel-text")).to_have_text("Time is up: this image counts as unanswered.", timeout=10_000)
    assert 5.0 < time.monotonic() - shown < 8.0  # the study's 6 s, not restarted by the change of screen
    assert page.evaluate("window.spoken") == ["5 seconds left", "1 second left"]


def _serious_violations(page: Page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate("async () => (await axe.run(document, { resultTypes: ['violations'] })).violations")
    return [
        f"{v['id']} ({v['impact']}): {[node['target'] for node in v['nodes']]}"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]


def test_axe_finds_nothing_serious_on_the_reading_page(page, live_server):
    study = open_study(
        name="Accessible", per_session=2, training=2, time_limit_s=10.0, ask_confidence=True, ask_reason=True
    )
    user = UserFactory(role="readers", password=PASSWORD)
    Reader.objects.create(user=user, study=study)
    log_in(page, live_server.url, user.username, PASSWORD)
    page.goto(f"{live_server.url}/reading/{study.pk}/read")
    expect(page.locator("#display-check")).to_be_visible()
    assert _serious_violations(page) == []  # the display check
    answer_display_check(page)
    wait_for_image(page, "Practice 1 of 2")
    assert _serious_violations(page) == []  # a trial: image, countdown, confidence, reason, buttons
    page.keyboard.press("3")
    page.keyboard.press("r")
    expect(page.locator("#panel-text")).to_contain_text("this image is")
    assert _serious_violations(page) == []  # the training feedback
