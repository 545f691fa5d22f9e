"""The public quiz (readerstudy/reading/quiz.py): its pool stays apart from every study's pools, visitors
play without anything being stored, the images go through the same blinded renderer and
headers, and a real browser plays it through."""

import pytest
from playwright.sync_api import expect

from readerstudy.reading.quiz import QUIZ_SIZE

pytestmark = pytest.mark.django_db


@pytest.mark.django_db(transaction=True)
def test_a_browser_plays_the_quiz_through(page, live_server, quiz_study):
    page.goto(f"{live_server.url}/quiz/{quiz_study.pk}/")
    expect(page.locator("h1")).to_have_text("Real or synthetic?")
    items = page.locator(".quiz-item")
    expect(items).to_have_count(QUIZ_SIZE)
    for index in range(QUIZ_SIZE):
        page.check(f"input[name=mark{index}][value={'real' if index % 2 else 'synthetic'}]")
    with page.expect_navigation():
        page.click("form.quiz button[type=submit]")
    expect(page.locator("h1")).to_contain_text(f"of {QUIZ_SIZE}")
    right = page.locator(".quiz-item.right").count()
    assert page.locator("h1").inner_text() == f"You got {right} of {QUIZ_SIZE}"
    assert right + page.locator(".quiz-item.wrong").count() == QUIZ_SIZE
