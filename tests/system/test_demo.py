"""`make demo` end to end at a tiny size, from an empty var/: the embedded default (SQLite, the
filesystem broker, a real worker), eight pseudo-subjects made from the template, ingested and
aligned, a DCGAN trained on six, the bank filled and screened against the two held out, the demo
study built and the machine observer run on it; then a demo reader reads a whole session in the
browser and the researcher downloads table.csv, whose counts match the calls made and which
holds the observer's row. Screenshots for the README
are taken on the way, so they stay true."""

import csv
import io
import os
import re
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support import REPO, free_port

SUBJECTS_OF_POOL = (
    "SELECT DISTINCT b.subject_id FROM readerstudy_poolentry e JOIN generator_bankimage b ON b.id = e.bank_image_id "
    "WHERE e.pool = ? AND b.image_class = 'real'"
)
SUBJECTS_OF_QUIZ = (
    "SELECT DISTINCT b.subject_id FROM readerstudy_quizimage q JOIN generator_bankimage b ON b.id = q.bank_image_id "
    "WHERE b.image_class = 'real'"
)

# The README's pictures are refreshed on purpose (`make screenshots` sets SYNTHREAD_SCREENSHOTS to
# docs/screenshots); an ordinary run writes its pictures beside its other output, no tracked file.
SCREENSHOTS_ENV = "SYNTHREAD_SCREENSHOTS"


def _log_in(page: Page, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("main button[type=submit]")


@pytest.fixture
def demo(start_process, tmp_path):
    """`manage.py demo --tiny` as `make demo` runs it, with a var/ of its own; yields its URL."""
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "MEDIA_ROOT")
    }
    env |= {"SYNTHREAD_VAR_DIR": str(tmp_path / "var"), "PYTHONUNBUFFERED": "1"}
    process = start_process(
        [sys.executable, REPO / "manage.py", "demo", "--tiny", "--bind", f"127.0.0.1:{port}"], env=env, name="demo"
    )
    deadline = time.monotonic() + 600
    while "Demo logins" not in process.log_path.read_text(errors="replace"):
        if process.popen.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the demo did not come up:\n{process.log_tail(60)}")
        time.sleep(2)
    yield f"http://127.0.0.1:{port}", process
    process.kill(signal.SIGTERM)  # the demo then stops its worker and server (their own sessions)


@pytest.mark.timeout(900)  # the whole pipeline runs first: alignment, training, the bank
def test_the_demo_serves_a_study_a_reader_reads_and_the_researcher_exports(demo, browser, tmp_path):
    url, process = demo
    screenshots = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path / "screenshots")
    screenshots.mkdir(parents=True, exist_ok=True)
    output = process.log_path.read_text(errors="replace")
    assert "demo-body-radiologist" in output and "demo-simulated" in output

    reader = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
    _log_in(reader, url, "demo-reader", "synthread-reader")
    expect(reader.locator("h1")).to_contain_text("consent")  # lands on the demo study
    reader.check("input[name=accept]")
    reader.click("main button[type=submit]")
    reader.click("text=Begin")
    expect(reader.locator("#display-check")).to_be_visible()  # once per session, before the first image
    reader.screenshot(path=str(screenshots / "display_check.png"))
    reader.click("#display-check button:has-text('I see both squares')")
    calls = {}
    for index in range(1, 3):
        expect(reader.locator("#phase-label")).to_have_text(f"Practice {index} of 2")
        expect(reader.locator("#trial-image")).to_be_visible()
        reader.keyboard.press("r")
        expect(reader.locator("#panel-text")).to_contain_text("this image is")
        reader.keyboard.press("Space")
    for index in range(1, 9):
        expect(reader.locator("#phase-label")).to_have_text(f"Image {index} of 8")
        expect(reader.locator("#trial-image")).to_be_visible()
        if index == 1:  # the README's picture of the reading page: the demo's own images
            reader.screenshot(path=str(screenshots / "reading.png"))
        key = "r" if index % 2 else "s"
        calls[index] = key
        reader.keyboard.press(key)
    expect(reader.locator("h1")).to_have_text("Thank you")

    researcher = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    _log_in(researcher, url, "demo-researcher", "synthread-researcher")
    researcher.goto(f"{url}/results/")
    researcher.click("text=Results >> nth=-1")
    expect(researcher.locator("h1")).to_contain_text("Demo study")
    study_id = re.search(r"/results/(\d+)/", researcher.url).group(1)
    table = researcher.request.get(f"{url}/api/v1/studies/{study_id}/results/table/?format=csv").text()
    rows = {row["reader"]: row for row in csv.DictReader(io.StringIO(table))}
    mine = rows["demo-reader"]
    assert sum(int(mine[k]) for k in ("tp", "fn", "fp", "tn")) == 8 and int(mine["expired"]) == 0
    called_real = sum(key == "r" for key in calls.values())
    assert int(mine["tp"]) + int(mine["fp"]) == called_real  # what was called real, whatever its truth
    assert "demo-simulated (simulated)" in rows
    observer = rows["machine observer"]  # held out by subject: six pseudo-subjects make that possible
    assert int(observer["tp"]) + int(observer["fn"]) >= 1 and int(observer["fp"]) + int(observer["tn"]) >= 1
    expect(researcher.locator("table.results").first).to_contain_text("machine observer")
    expect(researcher.locator("table.viewing")).to_contain_text("demo-reader")  # its viewing conditions
    researcher.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    researcher.screenshot(path=str(screenshots / "results.png"), full_page=True)

    # The pseudo-subjects split between the quiz, the training pool and the main pool: no person
    # whose answers are revealed is in the main pool, and a session spreads the main pool's people.
    with sqlite3.connect(tmp_path / "var" / "synthread.sqlite3") as database:
        people = {pool: {row[0] for row in database.execute(SUBJECTS_OF_POOL, [pool])} for pool in ("main", "training")}
        quiz = {row[0] for row in database.execute(SUBJECTS_OF_QUIZ)}
        spread = database.execute("SELECT max(max_images_per_subject) FROM readerstudy_readingsession").fetchone()[0]
    assert people["main"] and people["training"] and quiz
    assert not people["main"] & (people["training"] | quiz)
    assert spread <= 2  # at most 5 real images a session over the main pool's people

    admin = browser.new_context(viewport={"width": 1300, "height": 1000}).new_page()
    _log_in(admin, url, "demo-admin", "synthread-admin")
    subjects = admin.request.get(f"{url}/api/v1/subjects/").json()
    listed = subjects["results"] if isinstance(subjects, dict) else subjects
    assert len(listed) == 8 and {s["kind_display"] for s in listed} == {"demo pseudo-subject"}
    assert sorted(len(s["datasets"]) for s in listed) == [1] * 8
    admin.goto(f"{url}/admin/generator/subject/")
    expect(admin.locator("#result_list")).to_contain_text("demo pseudo-subject")
    admin.goto(f"{url}/generator/training/")
    admin.click("table a >> nth=0")
    expect(admin.locator("h1")).to_contain_text("Training job")
    admin.wait_for_timeout(1500)  # the page's script fills in progress and pictures
    admin.screenshot(path=str(screenshots / "training.png"), full_page=True)
