"""The ORH group interval (readerstudy.results.mrmc): MRMCaov's published example, the t-interval it
reduces to with disjoint case sets, and the jackknife against a hand computation."""

import math

import numpy as np
import pytest
from scipy.stats import norm, ttest_1samp

from readerstudy.results.mrmc import (
    METRICS,
    ReaderCalls,
    jackknife_cov2,
    orh_from_components,
    orh_group_interval,
)
from readerstudy.results.statistics import confusion_counts

REAL, SYNTHETIC = "real", "synthetic"
OTHER = {REAL: SYNTHETIC, SYNTHETIC: REAL}


def reader_of(name: str, trials: list[tuple[object, str, bool]]) -> ReaderCalls:
    """A reader from (case key, truth, right?) triples."""
    return ReaderCalls(name, tuple((key, truth, truth if right else OTHER[truth]) for key, truth, right in trials))


def metric_of(reader: ReaderCalls, metric: str) -> float | None:
    counts = confusion_counts((truth, call, False) for _, truth, call in reader.trials)
    return getattr(counts, metric)


# MRMCaov's published example


def test_mrmcaov_vandyke_single_treatment_empirical_auc():
    # MRMCaov's VanDyke example, one treatment, empirical AUC: MS(R), Cov₂ and the interval as
    # the package prints them; the mean is the interval's midpoint (the clip at 1 does not bite).
    low, high = 0.8253461, 0.9687280
    interval = orh_from_components(mean=(low + high) / 2, ms_r=0.003082629, cov2=0.0004775239, n_readers=5)
    assert interval.se == pytest.approx(0.03307642, abs=1e-6)
    assert interval.df == pytest.approx(12.59597, abs=1e-5)
    assert (interval.low, interval.high) == pytest.approx((low, high), abs=1e-6)
    assert interval.method == "Obuchowski-Rockette-Hillis (jackknife covariance)"


def test_negative_cov2_counts_as_zero_and_normal_quantile_when_readers_agree():
    negative = orh_from_components(mean=0.7, ms_r=0.01, cov2=-0.002, n_readers=4)
    assert negative.cov2 == -0.002
    assert negative.se == pytest.approx(math.sqrt(0.01 / 4))
    assert negative.df == pytest.approx(3)
    cases_only = orh_from_components(mean=0.7, ms_r=0.0, cov2=0.0025, n_readers=4)
    assert cases_only.df == math.inf
    assert cases_only.high - cases_only.low == pytest.approx(2 * norm.ppf(0.975) * 0.05)


def test_the_interval_is_clipped_to_zero_and_one():
    interval = orh_from_components(mean=0.97, ms_r=0.002, cov2=0.001, n_readers=5)
    assert interval.high == 1.0
    assert interval.low < 0.97


# Disjoint case sets: the t-interval over readers


def test_disjoint_case_sets_give_the_t_interval_over_readers():
    rng = np.random.default_rng(11)
    readers = []
    for j, skill in enumerate([0.55, 0.6, 0.7, 0.75, 0.9]):
        truths = [REAL] * 20 + [SYNTHETIC] * 20
        readers.append(reader_of(f"R{j}", [(f"R{j}-{k}", t, rng.random() < skill) for k, t in enumerate(truths)]))
    for metric in METRICS:
        thetas = [metric_of(reader, metric) for reader in readers]
        cov2, n_cases = jackknife_cov2(readers, metric)
        assert n_cases == 200
        assert cov2 == pytest.approx(0, abs=1e-15)  # zero up to rounding
        interval = orh_group_interval(readers, metric=metric)
        expected = ttest_1samp(thetas, 0.5)
        assert interval.mean == pytest.approx(np.mean(thetas))
        assert interval.ms_r == pytest.approx(np.var(thetas, ddof=1))
        assert interval.df == pytest.approx(4)
        assert (interval.low, interval.high) == pytest.approx(tuple(expected.confidence_interval(0.95)), rel=1e-9)
        assert interval.p_value == pytest.approx(expected.pvalue, rel=1e-9)


# The jackknife against a hand computation


def hand_cov2(readers: list[ReaderCalls], metric: str) -> float:
    """Cov₂ by the definition, one left-out case at a time, with the full θ̂ⱼ where θ̂ⱼ₍₋ₖ₎ is undefined."""
    keys = sorted({key for reader in readers for key, _, _ in reader.trials})
    c = len(keys)
    pseudo = []
    for reader in readers:
        full = metric_of(reader, metric)
        row = []
        for k in keys:
            without_k = metric_of(ReaderCalls(reader.reader, tuple(t for t in reader.trials if t[0] != k)), metric)
            row.append(full if without_k is None else without_k)
        pseudo.append(row)
    means = [sum(row) / c for row in pseudo]
    total, pairs = 0.0, 0
    for j in range(len(readers)):
        for other in range(len(readers)):
            if j != other:
                products = [(pseudo[j][k] - means[j]) * (pseudo[other][k] - means[other]) for k in range(c)]
                total += (c - 1) / c * sum(products)
                pairs += 1
    return total / pairs


def three_readers_six_cases(*, s1_slices_apart: bool = False) -> list[ReaderCalls]:
    # s1..s3 real subjects, g1..g3 synthetic images. A saw both of s1's slices (one right, one
    # wrong); C saw one synthetic image only, so leaving g3 out empties C's synthetic class.
    first, second = ("s1a", "s1b") if s1_slices_apart else ("s1", "s1")
    a = [(first, REAL, True), (second, REAL, False), ("s2", REAL, True)]
    a += [("g1", SYNTHETIC, True), ("g2", SYNTHETIC, False), ("g3", SYNTHETIC, True)]
    b = [("s1", REAL, True), ("s3", REAL, False), ("g1", SYNTHETIC, True), ("g2", SYNTHETIC, True)]
    c = [("s2", REAL, False), ("s3", REAL, True), ("s1", REAL, True), ("g3", SYNTHETIC, True)]
    return [reader_of("A", a), reader_of("B", b), reader_of("C", c)]


@pytest.mark.parametrize("metric", METRICS)
def test_jackknife_cov2_matches_a_hand_computation(metric):
    readers = three_readers_six_cases()
    expected = hand_cov2(readers, metric)
    cov2, n_cases = jackknife_cov2(readers, metric)
    assert n_cases == 6
    assert cov2 == pytest.approx(expected, rel=1e-12)
    assert abs(cov2) > 1e-4  # the example is not a trivial zero
    interval = orh_group_interval(readers, metric=metric)
    assert interval.cov2 == pytest.approx(expected, rel=1e-12)
    assert interval.n_cases == 6
    thetas = [metric_of(reader, metric) for reader in readers]
    assert interval.ms_r == pytest.approx(np.var(thetas, ddof=1))
    assert interval.se == pytest.approx(math.sqrt(np.var(thetas, ddof=1) / 3 + max(expected, 0)))


def test_a_subjects_slices_are_one_case_to_the_jackknife():
    grouped, n_cases = jackknife_cov2(three_readers_six_cases(), "accuracy")
    apart, n_cases_apart = jackknife_cov2(three_readers_six_cases(s1_slices_apart=True), "accuracy")
    assert (n_cases, n_cases_apart) == (6, 8)
    assert apart != pytest.approx(grouped, rel=1e-3)


def test_the_balanced_accuracy_fallback_is_used_in_the_example():
    c = three_readers_six_cases()[2]
    without_g3 = ReaderCalls("C", tuple(t for t in c.trials if t[0] != "g3"))
    assert metric_of(without_g3, "balanced_accuracy") is None


# Edge cases


def test_one_reader_gives_no_interval():
    reader = reader_of("A", [(k, REAL if k < 5 else SYNTHETIC, k % 3 != 0) for k in range(10)])
    for metric in METRICS:
        interval = orh_group_interval([reader], metric=metric)
        assert interval.n_readers == 1
        assert interval.mean == pytest.approx(metric_of(reader, metric))
        assert (interval.se, interval.df, interval.low, interval.high, interval.p_value) == (None,) * 5
        assert (interval.ms_r, interval.cov2) == (None, None)
        with pytest.raises(ValueError, match="two readers"):
            jackknife_cov2([reader], metric)


def test_identical_readers_on_identical_cases_leave_only_the_case_variance():
    trials = [(k, REAL if k < 10 else SYNTHETIC, k % 10 not in (0, 3, 7)) for k in range(20)]
    readers = [reader_of(name, trials) for name in "ABC"]
    interval = orh_group_interval(readers, metric="accuracy")
    assert interval.mean == pytest.approx(0.7)
    assert interval.ms_r == 0
    # Jackknife variance of a proportion over 20 single-trial cases: p(1 − p)/(n − 1).
    assert interval.cov2 == pytest.approx(0.7 * 0.3 / 19)
    assert interval.df == math.inf
    assert interval.high - interval.low == pytest.approx(2 * norm.ppf(0.975) * math.sqrt(0.7 * 0.3 / 19))


def test_identical_perfect_readers_give_a_point_interval():
    trials = [(k, REAL if k < 10 else SYNTHETIC, True) for k in range(20)]
    interval = orh_group_interval([reader_of(name, trials) for name in "ABC"], metric="balanced_accuracy")
    assert (interval.mean, interval.low, interval.high, interval.se) == (1.0, 1.0, 1.0, 0.0)
    assert (interval.p_value, interval.df) == (None, None)


def test_readers_without_a_defined_metric_and_their_cases_are_left_out():
    trials = [(k, REAL if k < 4 else SYNTHETIC, k not in (1, 6)) for k in range(8)]
    only_real = reader_of("D", [("d1", REAL, True), ("d2", REAL, False)])
    readers = [reader_of("A", trials), reader_of("B", trials[:-1]), only_real, ReaderCalls("E", ())]
    balanced = orh_group_interval(readers, metric="balanced_accuracy")
    assert (balanced.n_readers, balanced.n_cases) == (2, 8)
    accuracy = orh_group_interval(readers, metric="accuracy")
    assert (accuracy.n_readers, accuracy.n_cases) == (3, 10)
    assert orh_group_interval([only_real, ReaderCalls("E", ())], metric="balanced_accuracy") is None


def test_unknown_metric_or_label_is_an_error():
    reader = reader_of("A", [(1, REAL, True), (2, SYNTHETIC, True)])
    with pytest.raises(ValueError, match="metric"):
        orh_group_interval([reader, reader], metric="auc")
    with pytest.raises(ValueError, match="real"):
        orh_group_interval([ReaderCalls("A", ((1, "fake", REAL),))], metric="accuracy")
