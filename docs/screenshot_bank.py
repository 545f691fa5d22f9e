"""The README's picture of the bank: the synthetic images of a running `make demo`, as an admin sees them.

    .venv/bin/python docs/screenshot_bank.py [http://127.0.0.1:8000] [docs/screenshots/bank.png]

The demo must have finished setting up (it prints the logins); Chromium is Debian's, as in the tests.
"""

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"


def main(url: str = "http://127.0.0.1:8000", out: str = "docs/screenshots/bank.png") -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
        page.goto(f"{url}/accounts/login/")
        page.fill("#id_username", "demo-admin")
        page.fill("#id_password", "synthread-admin")
        page.click("main button[type=submit]")
        page.goto(f"{url}/generator/bank/?image_class=synthetic&status=active")
        page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        page.locator(".thumbs").scroll_into_view_if_needed()
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=out)
        browser.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
