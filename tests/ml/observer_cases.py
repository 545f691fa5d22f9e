"""Pseudo-subjects for the machine observer's tests (fast and system tier): brain-like slices
clustered by subject, labels by whole subject, and one observer run with the tests' settings."""

import numpy as np
from scipy.ndimage import gaussian_filter

from generator.ml.observer import REAL, SYNTHETIC, ObserverResult, run_observer

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
