"""What the browser tests of the reading page share: a study to read, logging in, the display
check, waiting for a trial's image."""

from playwright.sync_api import Page, expect

from readerstudy.reading.models import Reader, Study
from readerstudy.reading.pools import study_set_pools
from readerstudy.reading.sessions import study_open
from tests.factories import REAL, SYNTHETIC, UserFactory, bank_images

PASSWORD = "a-long-reader-passphrase-42"


def open_study(*, name: str, per_session: int, training: int, time_limit_s: float | None, **options) -> Study:
    synthetic = per_session // 2
    study = Study.objects.create(
        name=name,
        images_per_session=per_session,
        synthetic_min=synthetic - 2 if per_session >= 10 else synthetic,
        synthetic_max=synthetic + 2 if per_session >= 10 else synthetic,
        training_images=training,
        time_limit_s=time_limit_s,
        **options,
    )
    study_set_pools(
        study=study,
        main_pool=bank_images(per_session, REAL, size=64) + bank_images(per_session, SYNTHETIC, size=64),
        training_pool=bank_images(max(1, training // 2), REAL, size=64)
        + bank_images(max(1, training // 2), SYNTHETIC, size=64),
    )
    return study_open(study=study)


def log_in(page: Page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("main button[type=submit]")


def answer_display_check(page: Page, answer: str = "I see both squares") -> None:
    """The check before the first image of a session: click the answer."""
    expect(page.locator("#display-check")).to_be_visible()
    page.click(f"#display-check button:has-text('{answer}')")
    expect(page.locator("#display-check")).to_be_hidden()


def start_reading(page: Page, base_url: str, study: Study):
    """A new reader of the study, logged in, past the display check; returns the user."""
    user = UserFactory(role="readers", password=PASSWORD)
    Reader.objects.create(user=user, study=study)
    log_in(page, base_url, user.username, PASSWORD)
    page.goto(f"{base_url}/reading/{study.pk}/read")
    answer_display_check(page)
    return user


def wait_for_image(page: Page, label: str | None = None) -> None:
    """Wait until the trial (``label``, e.g. "Image 3 of 50") has its image on screen."""
    if label:
        expect(page.locator("#phase-label")).to_have_text(label)
    expect(page.locator("#trial-image")).to_be_visible()
