"""The machine observer: split by group, no bias on real against real, power against a σ = 1 px blur (α = 0.05)."""

import numpy as np
import pytest

from generator.ml.observer import REAL, SYNTHETIC, split_by_group
from tests.ml.observer_cases import observe, pseudo_subjects


def test_split_never_puts_a_group_on_both_sides_and_sends_readers_images_to_test():
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 12, 30)
    groups = [
        ("volume", group) if group < 12 else ("job", 1, group) for group in range(30) for _ in range(sizes[group])
    ]
    labels = [REAL if group[0] == "volume" else SYNTHETIC for group in groups]
    must_test = set(rng.choice(len(groups), 25, replace=False).tolist())
    split = split_by_group(labels, groups, test_fraction=0.3, seed=5, must_test=must_test)

    train_groups, test_groups = {groups[index] for index in split.train}, {groups[index] for index in split.test}
    assert not train_groups & test_groups
    assert sorted([*split.train, *split.test]) == list(range(len(groups)))
    assert {labels[index] for index in split.train} == {labels[index] for index in split.test} == {REAL, SYNTHETIC}
    # Each class keeps one group for training, so a must_test image can only stay there with its class's last group.
    assert must_test - set(split.must_test_in_train.tolist()) <= set(split.test.tolist())
    for kind in (REAL, SYNTHETIC):
        assert len({groups[index] for index in split.must_test_in_train if labels[index] == kind}) <= 1

    scored = split.scored.tolist()
    assert set(scored) <= set(split.test.tolist())
    assert sum(labels[index] == REAL for index in scored) == sum(labels[index] == SYNTHETIC for index in scored)
    assert len({groups[index] for index in scored}) == len(scored), "one scored image per group"
    groups_with_readers_images = {groups[index] for index in must_test}
    assert all(index in must_test for index in scored if groups[index] in groups_with_readers_images)


def test_split_of_readers_images_within_the_fraction_keeps_them_all_in_test():
    groups = [group for group in range(20) for _ in range(5)]
    labels = [REAL if group < 10 else SYNTHETIC for group in groups]
    must_test = {0, 1, 7, 52, 99}
    split = split_by_group(labels, groups, test_fraction=0.5, seed=0, must_test=must_test)
    assert must_test <= set(split.test.tolist()) and not len(split.must_test_in_train)
    assert split.groups_per_side == {"train": {REAL: 5, SYNTHETIC: 5}, "test": {REAL: 5, SYNTHETIC: 5}}
    every_image = split_by_group(labels, groups, test_fraction=0.5, seed=0, test_images_per_group=None)
    assert np.array_equal(every_image.scored, every_image.test)


def test_one_real_subject_cannot_be_held_out_and_the_observer_refuses_it():
    images, _ = pseudo_subjects(subjects=4, slices=2)
    groups = ["subject"] * 4 + [("job", 1, block) for block in range(4)]
    labels = [REAL] * 4 + [SYNTHETIC] * 4
    split = split_by_group(labels, groups, test_fraction=0.5, seed=0, must_test={0, 5})
    assert set(split.train.tolist()) >= {0, 1, 2, 3} and split.must_test_in_train.tolist() == [0]
    assert split.groups_per_side["test"][REAL] == 0
    assert any("real images come from 1 group" in note for note in split.notes)
    with pytest.raises(ValueError, match="both sides"):
        observe(images, labels, groups)


def test_split_refuses_a_group_holding_both_classes():
    with pytest.raises(ValueError, match="both real and synthetic"):
        split_by_group([REAL, SYNTHETIC, REAL], [1, 1, 2], test_fraction=0.5, seed=0)
