"""The public quiz (readerstudy/reading/quiz.py): its pool stays apart from every study's pools, visitors
play without anything being stored, the images go through the same blinded renderer and
headers, and a real browser plays it through."""

import pytest
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.core.management.base import CommandError

from readerstudy.reading.models import PoolEntry, QuizImage, Study
from readerstudy.reading.pools import study_pools_from_bank, study_set_pools
from readerstudy.reading.quiz import QUIZ_SIZE
from readerstudy.reading.sessions import SessionError

pytestmark = pytest.mark.django_db


def test_the_quiz_pool_takes_only_images_no_study_uses_and_studies_never_take_it(quiz_study):
    quiz_ids = set(QuizImage.objects.values_list("bank_image_id", flat=True))
    assert len(quiz_ids) == 12 and quiz_ids.isdisjoint(PoolEntry.objects.values_list("bank_image_id", flat=True))
    other = Study.objects.create(name="Later study", training_images=2)
    study_pools_from_bank(study=other, seed=0)  # the whole bank: the quiz images stay out
    assert quiz_ids.isdisjoint(PoolEntry.objects.filter(study=other).values_list("bank_image_id", flat=True))
    quiz_image = QuizImage.objects.first().bank_image
    with pytest.raises(SessionError, match="quiz pool"):
        study_set_pools(study=other, main_pool=[quiz_image], training_pool=[])
    with pytest.raises(CommandError, match="in no study's pools"):
        call_command("quiz_pool", "--per-class", "50")


def test_a_visitor_plays_and_nothing_is_stored(client, quiz_study):
    sessions_before = Session.objects.count()
    page = client.get(f"/quiz/{quiz_study.pk}/").content.decode()
    token = page.split(f"/quiz/{quiz_study.pk}/")[1].split("/")[0]
    images = [client.get(f"/quiz/{quiz_study.pk}/{token}/{i}.png") for i in range(QUIZ_SIZE)]
    assert len({len(r.content) for r in images}) == 1
    assert len({tuple(sorted((k, v) for k, v in r.items() if k != "Date")) for r in images}) == 1
    assert all("etag" not in {k.lower() for k in r.headers} for r in images)
    key = client.get(f"/quiz/{quiz_study.pk}/{token}/key", {f"mark{i}": "real" for i in range(QUIZ_SIZE)})
    assert f"You got {QUIZ_SIZE // 2} of {QUIZ_SIZE}" in key.content.decode()  # half the grid is real
    assert Session.objects.count() == sessions_before and "sessionid" not in client.cookies
    assert client.get(f"/quiz/{quiz_study.pk}/forged/0.png").status_code == 404
    assert client.get(f"/quiz/{quiz_study.pk}/{token}/{QUIZ_SIZE}.png").status_code == 404


def test_the_quiz_is_off_by_default(client, quiz_study):
    Study.objects.filter(pk=quiz_study.pk).update(quiz_enabled=False)
    assert client.get(f"/quiz/{quiz_study.pk}/").status_code == 404
