"""The machine observer: split by group, no bias on real against real, power against a σ = 1 px blur (α = 0.05)."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from generator.ml.observer import ALPHA, REAL, SYNTHETIC, ObserverResult, run_observer

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


def test_real_against_real_is_not_significant(null_case):
    *_, result, _ = null_case
    assert result.alpha == ALPHA == 0.05
    assert result.n_scored == 24 and result.tp + result.fn == result.fp + result.tn == 12
    assert result.p_value >= ALPHA and not result.significant
    assert 0.3 <= result.accuracy <= 0.7


def test_real_against_blurred_real_is_significant():
    images, subject_ids = pseudo_subjects()
    labels = halves(subject_ids)
    blurred = np.array(
        [
            gaussian_filter(image, sigma=1.0) if label == SYNTHETIC else image
            for image, label in zip(images, labels, strict=True)
        ]
    )
    result = observe(blurred, labels, subject_ids)
    print(f"blur: accuracy {result.accuracy:.3f}, p = {result.p_value:.3g}, {result.seconds:.1f} s")
    assert result.p_value < ALPHA and result.significant
    assert result.accuracy >= 0.8
    assert result.accuracy_interval[0] > 0.5


def test_same_seed_gives_the_same_result(null_case):
    images, labels, subject_ids, must_test, first, _ = null_case
    second = observe(images, labels, subject_ids, must_test=must_test)
    assert {**second.to_json(), "seconds": None} == {**first.to_json(), "seconds": None}
