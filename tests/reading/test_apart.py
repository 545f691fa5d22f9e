"""No repeats, no leaks (readerstudy/reading/apart.py, pools.py, sessions.py, quiz.py): a session
spreads people evenly, revealed images (training pools, the quiz) share no person and no pixels
with any main pool, and a study's images share one matrix size."""

from collections import Counter

import numpy as np
import pytest
from django.core.management import call_command

from generator.bank import bank_image_exclude
from generator.models import BankImage
from readerstudy.reading.apart import PoolsNotApart
from readerstudy.reading.models import QuizImage, Reader, Study
from readerstudy.reading.pools import study_pools_from_bank, study_set_pools
from readerstudy.reading.sessions import (
    PeopleIdsPool,
    SessionError,
    session_build,
    session_plan,
    study_open,
    study_session_plan,
)
from tests.factories import REAL, SYNTHETIC, SubjectFactory, UserFactory, bank_images, random_pixels

PROTOCOL = {"images_per_session": 50, "synthetic_min": 25, "synthetic_max": 25, "training_images": 2}


def _pools(people: int, images_per_person: int) -> dict:
    real = list(range(people * images_per_person))
    return {
        "main_real": PeopleIdsPool(real, [image // images_per_person for image in real]),
        "main_synthetic": list(range(10_000, 10_100)),
        "training_real": [20_000],
        "training_synthetic": [30_000],
    }


def _people_of(main_order: list[int], images_per_person: int) -> Counter:
    return Counter(image // images_per_person for image in main_order if image < 10_000)


@pytest.mark.parametrize(("people", "expected"), [(30, {1}), (5, {5}), (7, {3, 4}), (60, {0, 1})])
def test_a_session_spreads_its_real_images_over_people(people, expected):
    for seed in range(50):
        plan = session_plan(seed=seed, **_pools(people, 40), **PROTOCOL)
        counts = _people_of(plan.main_order, 40)
        assert sum(counts.values()) == 25
        assert set(counts.values()) | ({0} if people > 25 else set()) <= expected | {0}
        assert max(counts.values()) - min(counts.values()) <= 1 and plan.max_images_per_subject == max(counts.values())
    assert session_plan(seed=3, **_pools(people, 40), **PROTOCOL) == session_plan(
        seed=3, **_pools(people, 40), **PROTOCOL
    )


def test_people_and_their_images_are_drawn_uniformly():
    firsts, images = Counter(), Counter()
    for seed in range(3000):
        plan = session_plan(seed=seed, **_pools(50, 4), **{**PROTOCOL, "synthetic_min": 49, "synthetic_max": 49})
        [real] = [image for image in plan.main_order if image < 10_000]
        firsts[real // 4] += 1
        images[real % 4] += 1
    assert len(firsts) == 50 and max(firsts.values()) < 3 * 3000 / 50
    assert min(images.values()) > 0.8 * 3000 / 4


def _study_with_people(people: int, images_per_person: int, *, excluded: int = 0) -> Study:
    study = Study.objects.create(name=f"people {people}", images_per_session=30, synthetic_min=5, synthetic_max=5)
    real = [image for _ in range(people) for image in bank_images(images_per_person, REAL, subject=SubjectFactory())]
    for image in real[:excluded]:
        bank_image_exclude(image=image, reason="test")
    study_set_pools(study=study, main_pool=real + bank_images(10, SYNTHETIC), training_pool=[])
    study.training_images = 0
    study.save()
    return study


@pytest.mark.django_db
def test_a_study_session_from_five_people_spreads_25_real_images_five_each_and_records_it():
    study = _study_with_people(5, 8, excluded=3)  # a person's excluded images are skipped, not counted
    reader = Reader.objects.create(user=UserFactory(), study=study)
    session = session_build(reader=reader, seed=11)
    real = BankImage.objects.filter(pk__in=session.main_order, image_class=REAL)
    assert sorted(Counter(real.values_list("subject", flat=True)).values()) == [5, 5, 5, 5, 5]
    assert session.max_images_per_subject == 5
    assert not real.filter(status="excluded").exists()


@pytest.mark.django_db
def test_a_study_session_from_thirty_people_repeats_none():
    study = _study_with_people(30, 3)
    for seed in range(10):
        plan = study_session_plan(study=study, seed=seed)
        real = BankImage.objects.filter(pk__in=plan.main_order, image_class=REAL)
        assert real.count() == 25 == real.values("subject").distinct().count()
        assert plan.max_images_per_subject == 1


@pytest.mark.django_db
def test_fixed_sets_follow_the_same_rule():
    study = _study_with_people(5, 8)
    study.fixed_set = True
    study.save()
    study_open(study=study, seed=2)
    session = session_build(reader=Reader.objects.create(user=UserFactory(), study=study), seed=4)
    real = BankImage.objects.filter(pk__in=session.main_order, image_class=REAL)
    assert sorted(Counter(real.values_list("subject", flat=True)).values()) == [5, 5, 5, 5, 5]
    assert session.max_images_per_subject == 5


@pytest.mark.django_db
def test_a_training_images_person_or_twin_is_refused_from_a_main_pool_naming_them():
    person = SubjectFactory(label="pat-revealed")
    shown, mate = bank_images(2, REAL, subject=person)
    synthetic = bank_images(4, SYNTHETIC)
    study = Study.objects.create(name="apart")
    with pytest.raises(PoolsNotApart, match="subjects pat-revealed"):
        study_set_pools(study=study, main_pool=[mate, synthetic[0]], training_pool=[shown, synthetic[1]])
    # Another study may not put that person in its main pool once they are revealed here.
    study_set_pools(study=study, main_pool=[synthetic[0]], training_pool=[shown, synthetic[1]])
    later = Study.objects.create(name="later")
    with pytest.raises(PoolsNotApart, match="pat-revealed"):
        study_set_pools(study=later, main_pool=[mate, synthetic[2]], training_pool=[])
    # Nor reveal, in its training pool, a person another study's main pool shows.
    main_person = bank_images(2, REAL, subject=SubjectFactory(label="pat-main"))
    study_set_pools(study=later, main_pool=[main_person[0], synthetic[2]], training_pool=[])
    third = Study.objects.create(name="third")
    with pytest.raises(PoolsNotApart, match="training pool shares subjects pat-main"):
        study_set_pools(study=third, main_pool=[synthetic[3]], training_pool=[main_person[1]])


@pytest.mark.django_db
def test_a_quiz_images_twin_is_refused_from_a_main_pool():
    pixels = random_pixels(16, seed=5)
    [quizzed] = bank_images(1, SYNTHETIC, pixels=pixels)
    QuizImage.objects.create(bank_image=quizzed)
    bank_image_exclude(image=quizzed, reason="found a twin")  # the quiz still revealed its answer
    [twin] = bank_images(1, SYNTHETIC, pixels=pixels)
    with pytest.raises(PoolsNotApart, match=f"bank images {twin.pk}"):
        study_set_pools(study=Study.objects.create(name="twins"), main_pool=[twin], training_pool=[])


@pytest.mark.django_db
def test_mixed_matrix_sizes_are_refused_naming_the_sizes():
    real, synthetic = bank_images(2, REAL, size=32), bank_images(2, SYNTHETIC, size=16)
    study = Study.objects.create(name="sizes", training_images=2)
    with pytest.raises(PoolsNotApart, match="16², 32²"):
        study_set_pools(study=study, main_pool=real[:1] + synthetic[:1], training_pool=[])
    with pytest.raises(SessionError, match="16², 32²"):
        study_pools_from_bank(study=study, seed=0)
    bank_images(2, REAL, size=16)
    assert study_pools_from_bank(study=study, seed=0, matrix_size=16)["main_real"] == 1


@pytest.mark.django_db
def test_pools_from_the_bank_and_the_quiz_keep_revealed_people_out_of_main_pools():
    people = [SubjectFactory(label=f"p{n}") for n in range(8)]
    for person in people:
        bank_images(4, REAL, subject=person)
    bank_images(40, SYNTHETIC)
    call_command("quiz_pool", "--per-class", "5", "--seed", "1")
    quiz_people = set(QuizImage.objects.exclude(bank_image__subject=None).values_list("bank_image__subject", flat=True))
    assert len(quiz_people) == 2  # five images from as few people as it takes
    study = Study.objects.create(name="from bank", training_images=6)
    study_pools_from_bank(study=study, seed=3)
    entries = BankImage.objects.filter(pool_entries__study=study)
    main_people = set(entries.filter(pool_entries__pool="main", image_class=REAL).values_list("subject", flat=True))
    training_people = set(
        entries.filter(pool_entries__pool="training", image_class=REAL).values_list("subject", flat=True)
    )
    assert len(training_people) == 1 and not main_people & (training_people | quiz_people)
    assert len(main_people) == 5  # every person not revealed stays in the main pool, whole
    assert np.all([entries.filter(subject=p).count() == 4 for p in main_people])
