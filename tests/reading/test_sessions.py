"""Session composition (readerstudy/reading/sessions.py), over many seeds: the synthetic count within
the range and uniform over it, no duplicates, excluded images never drawn, pools apart (in the
database too), pools frozen once reading started, the stored seed rebuilds the session,
fixed-set readers share exactly the same sets, and a session costs the same few queries
whatever the size of its pools."""

from collections import Counter

import numpy as np
import pytest
from django.db import IntegrityError, transaction
from scipy.stats import chisquare

from generator.bank import bank_image_exclude
from generator.models import BankImage
from readerstudy.core.errors import EvidenceFrozen
from readerstudy.reading.models import PoolEntry, Reader, Study, Trial
from readerstudy.reading.pools import study_pools_from_bank, study_set_pools
from readerstudy.reading.sessions import (
    IdsPool,
    RankShuffle,
    SessionError,
    session_build,
    session_plan,
    study_open,
    study_pool_counts,
    study_session_plan,
)
from tests.factories import REAL, SYNTHETIC, StudyFactory, UserFactory, bank_images

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


def test_the_rank_shuffle_hands_out_every_rank_once_in_a_uniform_order():
    shuffle = RankShuffle(50, np.random.default_rng(0))
    ranks = shuffle.take(3) + shuffle.take(20) + shuffle.take(100)
    assert sorted(ranks) == list(range(50)) and shuffle.take(1) == []
    firsts = Counter(RankShuffle(10, np.random.default_rng(seed)).take(1)[0] for seed in range(3000))
    assert chisquare([firsts[rank] for rank in range(10)]).pvalue > 0.001


class _PartlyExcluded(IdsPool):
    """A pure pool whose images at some ranks have been excluded from the bank."""

    excluded = frozenset(range(0, 200, 3))

    def active_at(self, ranks):
        return {rank: self.ids[rank] for rank in ranks if rank not in self.excluded}


def test_excluded_images_are_never_drawn_and_the_others_stay_uniform():
    pools = {**POOLS, "main_synthetic": _PartlyExcluded(list(range(200, 400)))}
    excluded = {200 + rank for rank in _PartlyExcluded.excluded}
    counts = Counter()
    for seed in range(400):
        plan = session_plan(seed=seed, **pools, **PAPER)
        assert len(plan.main_order) == 50 == len(set(plan.main_order))
        assert sum(200 <= i < 400 for i in plan.main_order) == plan.synthetic_count
        counts.update(i for i in plan.main_order if 200 <= i < 400)
    assert not excluded & set(counts)
    assert chisquare([counts[i] for i in range(200, 400) if i not in excluded]).pvalue > 0.001


def test_a_pool_too_small_once_its_exclusions_are_skipped_is_refused_clearly():
    class MostlyExcluded(IdsPool):
        def active_at(self, ranks):
            return {rank: self.ids[rank] for rank in ranks if rank < 12}

    with pytest.raises(SessionError, match="holds 12 active synthetic"):
        session_plan(seed=0, **{**POOLS, "main_synthetic": MostlyExcluded(list(range(200, 400)))}, **PAPER)


@pytest.fixture
def study(db) -> Study:
    return StudyFactory(
        name="s", images_per_session=12, synthetic_min=4, synthetic_max=8, training_images=4, pools=(15, 3)
    )


def _pool(study: Study, pool: str):
    return BankImage.objects.filter(pool_entries__study=study, pool_entries__pool=pool)


def test_pools_must_stay_apart(study):
    main = list(_pool(study, "main"))
    with pytest.raises(SessionError, match=r"^1 image"):
        study_set_pools(study=study, main_pool=main, training_pool=main[:1])
    with pytest.raises(SessionError, match=r"^2 image"):
        study_set_pools(study=study, main_pool=_pool(study, "main"), training_pool=_pool(study, "main")[:2])


def test_the_database_keeps_the_pools_apart_and_the_ranks_unique(study):
    entry = PoolEntry.objects.filter(study=study, pool="main").first()
    with pytest.raises(IntegrityError), transaction.atomic():
        PoolEntry.objects.create(
            study=study, pool="training", image_class=entry.image_class, rank=99, bank_image_id=entry.bank_image_id
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        PoolEntry.objects.create(
            study=study,
            pool="main",
            image_class=entry.image_class,
            rank=entry.rank,
            bank_image=bank_images(1, REAL, size=8)[0],
        )


def test_pools_given_as_querysets_are_ranked_densely_per_class_by_id(study):
    spare = bank_images(4, REAL) + bank_images(2, SYNTHETIC)
    training = BankImage.objects.filter(pk__in=[image.pk for image in spare[:1] + spare[4:5]])
    study_set_pools(study=study, main_pool=_pool(study, "main").order_by("-pk"), training_pool=training)
    assert study_pool_counts(study=study) == {
        "main_real": 15,
        "main_synthetic": 15,
        "training_real": 1,
        "training_synthetic": 1,
    }
    for image_class in ("real", "synthetic"):
        entries = PoolEntry.objects.filter(study=study, pool="main", image_class=image_class).order_by("rank")
        assert [e.rank for e in entries] == list(range(15))
        assert [e.bank_image_id for e in entries] == sorted(e.bank_image_id for e in entries)
        assert all(e.bank_image.image_class == image_class for e in entries)


def test_images_excluded_after_the_pools_were_set_are_never_drawn(study):
    excluded = list(_pool(study, "main").filter(image_class="synthetic")[:7]) + list(_pool(study, "training")[:1])
    for image in excluded:
        bank_image_exclude(image=image, reason="test")
    excluded_ids = {image.pk for image in excluded}
    for seed in range(200):
        plan = study_session_plan(study=study, seed=seed)
        assert excluded_ids.isdisjoint(plan.main_order + plan.training_order)
        assert len(set(plan.main_order)) == 12 and len(set(plan.training_order)) == 4
    assert study_session_plan(study=study, seed=3) == study_session_plan(study=study, seed=3)
    session = session_build(reader=Reader.objects.create(user=UserFactory(), study=study), seed=3)
    assert excluded_ids.isdisjoint(t.bank_image_id for t in session.trials.all())

    for image in _pool(study, "main").filter(image_class="synthetic", status="active")[:5]:
        bank_image_exclude(image=image, reason="test")
    with pytest.raises(SessionError, match="holds 3 active synthetic"):
        study_session_plan(study=study, seed=0)


def test_the_pools_freeze_once_a_reader_has_started(study):
    session_build(reader=Reader.objects.create(user=UserFactory(), study=study), seed=1)
    with pytest.raises(EvidenceFrozen, match="pools"):
        study_set_pools(study=study, main_pool=_pool(study, "main"), training_pool=[])
    assert study_pool_counts(study=study)["training_real"] == 3


def test_a_session_costs_the_same_few_queries_whatever_the_pool_size(study, django_assert_max_num_queries):
    # 4 pool sizes and 1 count of people; per synthetic pool 1 rank look-up, per real pool 1
    # people look-up and 1 image look-up (one round: fewer real images than people); then the
    # session, its trials and the savepoint around them.
    reader = Reader.objects.create(user=UserFactory(), study=study)
    with django_assert_max_num_queries(15):
        session_build(reader=reader, seed=2)


def test_pools_from_the_bank_draw_a_training_pool_and_put_every_other_active_image_in_main(db):
    images = bank_images(9, REAL, size=8) + bank_images(11, SYNTHETIC, size=8)
    bank_image_exclude(image=images[0], reason="test")
    study = Study.objects.create(name="bank", training_images=5)
    counts = study_pools_from_bank(study=study, seed=4)
    assert counts == {"main_real": 5, "main_synthetic": 8, "training_real": 3, "training_synthetic": 3}
    assert not PoolEntry.objects.filter(study=study, bank_image=images[0]).exists()
    training = set(_pool(study, "training").values_list("pk", flat=True))
    assert study_pools_from_bank(study=study, seed=4) == counts  # same seed, same split
    assert set(_pool(study, "training").values_list("pk", flat=True)) == training

    only = BankImage.objects.filter(pk__in=[image.pk for image in images[1:5] + images[9:13]])
    counts = study_pools_from_bank(study=study, bank_images=only, training_per_class=1, seed=4)
    assert counts == {"main_real": 3, "main_synthetic": 3, "training_real": 1, "training_synthetic": 1}
    with pytest.raises(SessionError, match="Only 4 active real images"):
        study_pools_from_bank(study=study, bank_images=only, training_per_class=5)

    # Another study of the same bank: its training pool shows no one the first study's main pool
    # shows, and its main pool no one the first study's training pool reveals.
    other = Study.objects.create(name="bank again", training_images=2)
    study_pools_from_bank(study=other, seed=5)
    first_main, first_training = _pool(study, "main"), _pool(study, "training")
    assert not set(_pool(other, "training").values_list("subject", flat=True)) - {None} & set(
        first_main.values_list("subject", flat=True)
    )
    assert not set(_pool(other, "main").values_list("subject", flat=True)) - {None} & set(
        first_training.values_list("subject", flat=True)
    )
    assert set(_pool(other, "main").values_list("pk", flat=True)).isdisjoint(
        first_training.values_list("pk", flat=True)
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
