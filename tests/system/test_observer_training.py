"""The machine observer: split by group, no bias on real against real, power against a σ = 1 px blur (α = 0.05)."""

import json

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from generator.ml.observer import ALPHA, REAL, SYNTHETIC, ObserverResult
from tests.ml.observer_cases import EPOCHS, halves, observe, pseudo_subjects, readers_images


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
