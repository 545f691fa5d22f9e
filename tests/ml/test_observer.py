"""The machine observer: split by group, no bias on real against real, power against a σ = 1 px blur (α = 0.05)."""

import json

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from generator.ml.observer import REAL, SYNTHETIC, ObserverResult, run_observer, split_by_group

SUBJECTS = 48  # 24 held out, 12 per class: 24 scored trials, one per held-out subject
SLICES_PER_SUBJECT = 6
SIZE = 32
EPOCHS = 8
BATCH_SIZE = 32


def pseudo_subjects(subjects: int = SUBJECTS, slices: int = SLICES_PER_SUBJECT, seed: int = 0):
    """Brain-like slices [n, SIZE, SIZE] in [−1, 1] and their subject ids.

    A head-like ellipse filled with smooth random "tissue" on a dark background, with pixel noise.
    A subject's slices share its head shape and its anatomy (moved a pixel or two, like neighbouring
    grid slices), so a classifier can learn who a subject is: the clustering the split must survive.
    """
    rng = np.random.default_rng(seed)
    coordinates = np.linspace(-1, 1, SIZE)
    rows, columns = np.meshgrid(coordinates, coordinates, indexing="ij")

    def smooth_field():
        field = gaussian_filter(rng.normal(size=(SIZE, SIZE)), 2.5)
        return field / field.std()

    images, subject_ids = [], []
    for subject in range(subjects):
        radii, anatomy = rng.uniform(0.7, 0.9, 2), smooth_field()
        for _ in range(slices):
            centre = rng.uniform(-0.05, 0.05, 2)
            head = ((rows - centre[0]) / radii[0]) ** 2 + ((columns - centre[1]) / radii[1]) ** 2 < 1
            moved = np.roll(anatomy, rng.integers(-2, 3, 2), axis=(0, 1))
            tissue = 0.2 + 0.25 * (0.6 * moved + 0.8 * smooth_field())
            image = np.where(head, tissue, -0.9) + rng.normal(0, 0.05, (SIZE, SIZE))
            images.append(np.clip(image, -1, 1))
            subject_ids.append(subject)
    return np.array(images, np.float32), subject_ids


def halves(subject_ids, seed: int = 0) -> list[str]:
    """Label a random half of the subjects "synthetic", the rest "real": whole subjects, never slices."""
    subjects = sorted(set(subject_ids))
    synthetic = set(np.random.default_rng(seed).permutation(subjects)[: len(subjects) // 2].tolist())
    return [SYNTHETIC if subject in synthetic else REAL for subject in subject_ids]


def readers_images(subject_ids, labels) -> set[int]:
    """Two slices of each of the first three real and three synthetic subjects: "the images the readers saw"."""
    chosen = set()
    for kind in (REAL, SYNTHETIC):
        subjects = sorted({subject for subject, label in zip(subject_ids, labels, strict=True) if label == kind})[:3]
        for subject in subjects:
            chosen.update([index for index, other in enumerate(subject_ids) if other == subject][:2])
    return chosen


def observe(images, labels, groups, **options) -> ObserverResult:
    return run_observer(images, labels, groups, seed=0, epochs=EPOCHS, batch_size=BATCH_SIZE, **options)


@pytest.fixture(scope="module")
def null_case():
    """Real against real: both halves are the same kind of slices."""
    images, subject_ids = pseudo_subjects()
    labels = halves(subject_ids)
    must_test = readers_images(subject_ids, labels)
    reports = []
    result = observe(images, labels, subject_ids, must_test=must_test, progress=lambda *report: reports.append(report))
    print(f"null: accuracy {result.accuracy:.3f}, p = {result.p_value:.3g}, {result.seconds:.1f} s")
    return images, labels, subject_ids, must_test, result, reports


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


def test_result_lists_every_held_out_image_with_the_readers_convention(null_case):
    images, labels, _, must_test, result, reports = null_case
    assert must_test <= set(result.test_indices)
    assert len(result.test_indices) == len(result.test_calls) == len(result.test_probabilities) == result.n_test
    assert set(result.scored_indices) <= set(result.test_indices)
    assert result.n_train + result.n_test == len(images)
    call_of = dict(zip(result.test_indices, result.test_calls, strict=True))
    truth_and_call = [(labels[index], call_of[index]) for index in result.scored_indices]
    assert result.tp == truth_and_call.count((REAL, REAL))
    assert result.fn == truth_and_call.count((REAL, SYNTHETIC))
    assert result.fp == truth_and_call.count((SYNTHETIC, REAL))
    assert result.tn == truth_and_call.count((SYNTHETIC, SYNTHETIC))
    assert [(epoch, total) for epoch, total, _ in reports] == [(epoch, EPOCHS) for epoch in range(1, EPOCHS + 1)]
    assert all("loss" in logs for *_, logs in reports)
    assert ObserverResult.from_json(json.loads(json.dumps(result.to_json()))) == result
