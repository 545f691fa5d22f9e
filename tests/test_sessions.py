"""Session composition (readerstudy/sessions.py), over many seeds: the synthetic count within
the range and uniform over it, no duplicates, pools apart, the stored seed rebuilds the session,
fixed-set readers share exactly the same sets."""

from collections import Counter

import numpy as np
import pytest
from scipy.stats import chisquare

from generator.bank import bank_image_store
from readerstudy.models import Reader, Study, Trial
from readerstudy.sessions import SessionError, session_build, session_plan, study_open, study_set_pools
from tests.factories import UserFactory

POOLS = {
    "main_real": list(range(0, 200)),
    "main_synthetic": list(range(200, 400)),
    "training_real": list(range(400, 420)),
    "training_synthetic": list(range(420, 440)),
}
PAPER = {"images_per_session": 50, "synthetic_min": 20, "synthetic_max": 30, "training_images": 10}


def test_synthetic_counts_stay_in_range_and_are_uniform_over_it():
    counts = Counter(session_plan(seed=seed, **POOLS, **PAPER).synthetic_count for seed in range(2200))
    assert set(counts) == set(range(20, 31))
    assert chisquare(list(counts.values())).pvalue > 0.001  # 11 values, 200 expected each


def test_a_plan_has_no_duplicates_and_the_right_classes():
    synthetic = set(POOLS["main_synthetic"]) | set(POOLS["training_synthetic"])
    for seed in range(300):
        plan = session_plan(seed=seed, **POOLS, **PAPER)
        assert len(plan.main_order) == 50 == len(set(plan.main_order))
        assert sum(i in synthetic for i in plan.main_order) == plan.synthetic_count
        assert len(plan.training_order) == 10 and sum(i in synthetic for i in plan.training_order) == 5
        assert set(plan.main_order).isdisjoint(plan.training_order)


def test_the_same_seed_rebuilds_the_same_session_and_another_seed_does_not():
    assert session_plan(seed=7, **POOLS, **PAPER) == session_plan(seed=7, **POOLS, **PAPER)
    assert session_plan(seed=7, **POOLS, **PAPER).main_order != session_plan(seed=8, **POOLS, **PAPER).main_order


def test_a_pool_too_small_is_refused_clearly():
    with pytest.raises(SessionError, match="holds 10 active synthetic"):
        session_plan(seed=0, **{**POOLS, "main_synthetic": list(range(200, 210))}, **PAPER)


def _bank(count: int, image_class: str) -> list:
    return [
        bank_image_store(pixels=np.zeros((8, 8), np.float32), image_class=image_class, generator_name="t")
        for _ in range(count)
    ]


@pytest.fixture
def study(db) -> Study:
    study = Study.objects.create(name="s", images_per_session=12, synthetic_min=4, synthetic_max=8, training_images=4)
    study_set_pools(
        study=study,
        main_pool=_bank(15, "real") + _bank(15, "synthetic"),
        training_pool=_bank(3, "real") + _bank(3, "synthetic"),
    )
    return study


def test_pools_must_stay_apart(study):
    with pytest.raises(SessionError, match="both the main and the training pool"):
        study_set_pools(
            study=study, main_pool=list(study.main_pool.all()), training_pool=list(study.main_pool.all())[:1]
        )


def test_a_built_session_stores_its_seed_and_creates_every_trial_with_a_token(study):
    session = session_build(reader=Reader.objects.create(user=UserFactory(), study=study), seed=42)
    trials = list(session.trials.all())
    assert [t.phase for t in trials] == [Trial.Phase.TRAINING] * 4 + [Trial.Phase.MAIN] * 12
    assert [t.bank_image_id for t in trials] == session.training_order + session.main_order
    assert len({t.token for t in trials}) == 16 and all(len(t.token) >= 40 for t in trials)
    assert 4 <= session.synthetic_count <= 8
    rebuilt = session_build(reader=Reader.objects.create(user=UserFactory(), study=study), seed=42)
    assert (rebuilt.main_order, rebuilt.training_order) == (session.main_order, session.training_order)


def test_fixed_set_readers_share_exactly_the_same_sets_in_their_own_order(study):
    study.fixed_set = True
    study_open(study=study, seed=1)
    sessions = [session_build(reader=Reader.objects.create(user=UserFactory(), study=study)) for _ in range(4)]
    assert all(sorted(s.main_order) == study.fixed_main_set for s in sessions)
    assert all(sorted(s.training_order) == study.fixed_training_set for s in sessions)
    assert len({tuple(s.main_order) for s in sessions}) > 1  # each in their own order
    assert len({s.synthetic_count for s in sessions}) == 1
