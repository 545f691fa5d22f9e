"""Viewing conditions: the display check a reader answers before the first image, the screen and
window a session was read in, and how each image was on screen (its scale factor k, full screen).

A reviewer must be able to tell whether an image was shown at 1:1 on a calibrated monitor or blown
up fourfold on a dim laptop; the reading page reports what the browser knows, this module keeps it.
The display check follows AAPM TG18's idea (a grey-step pattern with low-contrast targets at both
ends of the range): brain MR lives in the dark greys, and a dim screen in a bright room crushes them.
"""

import io
from dataclasses import dataclass

import numpy as np
from django.utils import timezone
from PIL import Image

from readerstudy.core.errors import ApplicationError

from .models import DisplayCheck, ReadingSession

# The check's matrix; the page shows it pixel-true like the images (k × k screen pixels each).
DISPLAY_CHECK_SIZE = 128
GREY_STEPS = 16  # 0, 17, …, 255: TG18-CT's sixteen levels
DARK_PATCH, DARK_TARGET = 0, 13  # "13 on 0": lost on a display that crushes blacks
LIGHT_PATCH, LIGHT_TARGET = 255, 242  # "242 on 255": lost on one that clips whites
SURROUND = 128

ADVICE = {
    DisplayCheck.DARK_MISSED: (
        "Your display hides dark greys, where most of a brain MR image lives. Turn the screen's "
        "brightness up, dim the room's lights or close the blinds, and switch off any night or "
        "eye-saver mode; then look again."
    ),
    DisplayCheck.LIGHT_MISSED: (
        "Your display clips light greys. Turn the screen's contrast (or brightness) down a little; then look again."
    ),
    DisplayCheck.NEITHER_SEEN: (
        "Your display hides both dark and light greys. Dim the room's lights, switch off any night or "
        "eye-saver mode, and set the screen's brightness and contrast to their middle; then look again."
    ),
}


class ViewingInvalid(ApplicationError):
    """Viewing conditions a browser cannot have reported (400)."""


@dataclass(frozen=True)
class ViewingConditions:
    """What the reading page reports, in CSS pixels (× device_pixel_ratio = screen pixels)."""

    screen_width_px: int
    screen_height_px: int
    window_width_px: int
    window_height_px: int
    device_pixel_ratio: float
    display_check: str
    browser: str = ""

    def validate(self) -> None:
        sizes = (self.screen_width_px, self.screen_height_px, self.window_width_px, self.window_height_px)
        if any(not 1 <= size <= 100_000 for size in sizes):
            raise ViewingInvalid("Screen and window sizes are whole CSS pixels from 1 to 100,000.")
        if not 0.1 <= self.device_pixel_ratio <= 16:
            raise ViewingInvalid("A device pixel ratio runs from 0.1 to 16.")
        if self.display_check not in DisplayCheck.values:
            raise ViewingInvalid(f"The display check's answer is one of {', '.join(DisplayCheck.values)}.")


def display_check_needed(*, session: ReadingSession) -> bool:
    """Once per session: until the reader has answered it."""
    return not session.display_check


def viewing_record(*, session: ReadingSession, conditions: ViewingConditions) -> tuple[ReadingSession, bool]:
    """Keep a session's viewing conditions, the first time only (they are evidence: a second
    report, from a reload, changes nothing). Returns the session and whether this call recorded."""
    conditions.validate()
    updated = ReadingSession.objects.filter(pk=session.pk, display_check="").update(
        screen_width_px=conditions.screen_width_px,
        screen_height_px=conditions.screen_height_px,
        window_width_px=conditions.window_width_px,
        window_height_px=conditions.window_height_px,
        device_pixel_ratio=conditions.device_pixel_ratio,
        browser=conditions.browser[: ReadingSession._meta.get_field("browser").max_length],
        display_check=conditions.display_check,
        viewing_recorded_at=timezone.now(),
    )
    session.refresh_from_db()
    return session, bool(updated)


def display_check_pixels() -> np.ndarray:
    """The check's 8-bit pattern: sixteen grey steps across the top; below, a black patch holding
    a square of 13 and a white patch holding a square of 242, on a mid-grey surround."""
    size = DISPLAY_CHECK_SIZE
    pixels = np.full((size, size), SURROUND, dtype=np.uint8)
    step_width = size // GREY_STEPS
    for step in range(GREY_STEPS):
        pixels[: size // 4, step * step_width : (step + 1) * step_width] = round(step * 255 / (GREY_STEPS - 1))
    half, patch_top, target = size // 2, 3 * size // 8, size // 8
    for left, patch, square in ((0, DARK_PATCH, DARK_TARGET), (half, LIGHT_PATCH, LIGHT_TARGET)):
        pixels[patch_top : patch_top + half, left : left + half] = patch
        top, start = patch_top + half // 2 - target // 2, left + half // 2 - target // 2
        pixels[top : top + target, start : start + target] = square
    return pixels


def display_check_png() -> bytes:
    """The pattern as an 8-bit grey PNG with no gamma or colour chunk that could shift a grey."""
    out = io.BytesIO()
    Image.fromarray(display_check_pixels()).save(out, format="PNG")  # uint8, 2D: mode "L"
    return out.getvalue()


VIEWING_COLUMNS = ["screen_css_px", "window_css_px", "device_pixel_ratio", "browser", "display_check"]
BROWSER_NAMES = [  # the User-Agent token that names each browser, most specific first
    ("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"), ("Version/", "Safari"),
]  # fmt: skip


def _size(width: int | None, height: int | None) -> str:
    return f"{width}x{height}" if width and height else ""


def session_viewing(session: ReadingSession) -> dict:
    """A session's viewing conditions as the exports write them (empty where never recorded)."""
    return {
        "screen_css_px": _size(session.screen_width_px, session.screen_height_px),
        "window_css_px": _size(session.window_width_px, session.window_height_px),
        "device_pixel_ratio": session.device_pixel_ratio,
        "browser": session.browser,
        "display_check": session.display_check,
    }


def browser_name(user_agent: str) -> str:
    """ "Chrome 156" from a User-Agent, for people; the exports keep the whole string."""
    for token, name in BROWSER_NAMES:
        if token in user_agent:
            version = user_agent.split(token, 1)[1].split(".", 1)[0].split(" ", 1)[0]
            return f"{name} {version}".strip()
    return user_agent[:40]
