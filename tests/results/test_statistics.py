"""Statistics of the results (readerstudy.results.statistics): small known cases and the paper's Table 1."""

import csv
import math
from fractions import Fraction
from itertools import combinations

import numpy as np
import pytest
from scipy.stats import fisher_exact, mannwhitneyu

from readerstudy.results.statistics import (
    ROW_COLUMNS,
    ConfusionCounts,
    accuracy_binomial_test,
    balanced_accuracy_bootstrap_interval,
    balanced_accuracy_permutation_test,
    confusion_counts,
    how_real_score,
    pooled_mean,
    reader_agreement,
    reader_roc,
    reader_statistics,
    wilson_interval,
)
from tests.support import REPO

# The paper's Table 1 (Kazuhiro et al. 2018), copied from the design folder's data/ so the repo's
# tests need nothing outside it.
PAPER_TABLE1 = REPO / "tests" / "data" / "paper_table1.csv"

ALL_RIGHT_50 = ConfusionCounts(tp=25, fn=0, fp=0, tn=25)
ALL_REAL_30_20 = ConfusionCounts(tp=30, fn=0, fp=20, tn=0)


def paper_rows() -> list[dict[str, str]]:
    with PAPER_TABLE1.open(newline="") as table:
        return list(csv.DictReader(table))


def random_calls(rng: np.random.Generator, n: int) -> list[str]:
    return list(rng.choice(["real", "synthetic"], size=n))


# Counts and rates


def test_confusion_counts_sorts_calls_into_cells_and_keeps_expired_apart():
    outcomes = [
        ("real", "real", False),
        ("real", "real", False),
        ("real", "synthetic", False),
        ("synthetic", "real", False),
        ("synthetic", "synthetic", False),
        ("synthetic", "synthetic", False),
        ("synthetic", "synthetic", False),
        ("real", None, True),
        ("synthetic", "", False),  # neither called nor expired: not counted at all
    ]
    assert confusion_counts(outcomes) == ConfusionCounts(tp=2, fn=1, fp=1, tn=3, expired=1)


def test_confusion_counts_rejects_unknown_labels():
    with pytest.raises(ValueError, match="real"):
        confusion_counts([("fake", "real", False)])


def test_rates_of_a_mixed_reader():
    counts = ConfusionCounts(tp=8, fn=2, fp=3, tn=7, expired=4)
    assert (counts.n_real, counts.n_synthetic, counts.called) == (10, 10, 20)
    assert counts.sensitivity == pytest.approx(0.8)
    assert counts.false_negative_rate == pytest.approx(0.2)
    assert counts.specificity == pytest.approx(0.7)
    assert counts.false_positive_rate == pytest.approx(0.3)
    assert counts.accuracy == pytest.approx(0.75)
    assert counts.balanced_accuracy == pytest.approx(0.75)


def test_a_reader_with_every_call_right():
    counts = ALL_RIGHT_50
    assert counts.accuracy == 1
    assert counts.balanced_accuracy == 1
    interval = wilson_interval(counts.tp + counts.tn, counts.called)
    assert interval.high == 1
    assert 0.9 < interval.low < 1
    assert accuracy_binomial_test(counts).p_value < 1e-10


def test_calling_everything_real_scores_accuracy_but_not_balanced_accuracy():
    counts = ALL_REAL_30_20
    assert counts.accuracy == pytest.approx(0.60)
    assert counts.balanced_accuracy == pytest.approx(0.50)
    assert (counts.sensitivity, counts.specificity) == (1, 0)
    assert (counts.false_positive_rate, counts.false_negative_rate) == (1, 0)


def test_zero_denominators_give_none_not_a_crash():
    nothing_called = ConfusionCounts(tp=0, fn=0, fp=0, tn=0, expired=3)
    assert nothing_called.as_row() == {
        **dict.fromkeys(ROW_COLUMNS, None),
        **dict(tp=0, fn=0, fp=0, tn=0, expired=3, n_real=0, n_synthetic=0, called=0),
    }
    statistics = reader_statistics(nothing_called)
    assert statistics.accuracy_interval is None
    assert statistics.sensitivity_interval is None
    assert statistics.balanced_accuracy_interval is None
    assert statistics.accuracy_test is None
    assert statistics.balanced_accuracy_test is None


def test_only_real_trials_leave_the_synthetic_side_undefined():
    counts = ConfusionCounts(tp=6, fn=4, fp=0, tn=0)
    assert counts.sensitivity == pytest.approx(0.6)
    assert counts.specificity is None
    assert counts.false_positive_rate is None
    assert counts.balanced_accuracy is None
    assert counts.accuracy == pytest.approx(0.6)
    assert accuracy_binomial_test(counts) is not None
    assert balanced_accuracy_bootstrap_interval(counts) is None
    assert balanced_accuracy_permutation_test(counts) is None
    assert wilson_interval(counts.tn, counts.n_synthetic) is None


def test_as_row_names_every_column_once():
    row = ConfusionCounts(tp=1, fn=2, fp=3, tn=4).as_row()
    assert list(row) == list(ROW_COLUMNS)
    assert row["balanced_accuracy"] == pytest.approx((1 / 3 + 4 / 7) / 2)


# Intervals


def test_wilson_interval_matches_the_textbook_value():
    interval = wilson_interval(8, 10)
    assert (interval.low, interval.high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert interval.label == "Wilson score, 95% interval"


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_trials():
    small = ConfusionCounts(tp=14, fn=6, fp=8, tn=12)
    large = ConfusionCounts(tp=140, fn=60, fp=80, tn=120)
    small_interval = balanced_accuracy_bootstrap_interval(small, seed=1)
    large_interval = balanced_accuracy_bootstrap_interval(large, seed=1)
    for counts, interval in ((small, small_interval), (large, large_interval)):
        assert interval.low < counts.balanced_accuracy < interval.high
    assert large_interval.high - large_interval.low < 0.5 * (small_interval.high - small_interval.low)
    assert "bootstrap" in small_interval.label


def test_bootstrap_interval_is_reproducible_by_seed():
    counts = ConfusionCounts(tp=1400, fn=600, fp=800, tn=1200)
    assert balanced_accuracy_bootstrap_interval(counts, seed=3) == balanced_accuracy_bootstrap_interval(counts, seed=3)
    assert balanced_accuracy_bootstrap_interval(counts, seed=3) != balanced_accuracy_bootstrap_interval(counts, seed=4)


def test_bootstrap_interval_width_is_about_four_standard_errors():
    counts = ConfusionCounts(tp=60, fn=40, fp=30, tn=70)
    interval = balanced_accuracy_bootstrap_interval(counts, n_resamples=20_000)
    standard_error = np.sqrt(0.6 * 0.4 / 100 + 0.7 * 0.3 / 100) / 2
    assert interval.high - interval.low == pytest.approx(2 * 1.96 * standard_error, rel=0.1)


# Tests against chance


def test_binomial_test_of_a_coin_flipper_is_not_significant():
    result = accuracy_binomial_test(ConfusionCounts(tp=13, fn=12, fp=13, tn=12))
    assert result.p_value == pytest.approx(1.0)
    assert result.label == "Exact binomial test (two-sided), H0: accuracy = 0.5"


def test_permutation_test_finds_a_perfect_reader():
    result = balanced_accuracy_permutation_test(ALL_RIGHT_50)
    # Two of the C(50, 25) ways to place 25 "real" calls are as far from chance: all right, all wrong.
    assert result.p_value == pytest.approx(2 / math.comb(50, 25), rel=1e-9)
    assert result.statistic == 1
    assert result.n_permutations is None
    assert result.label.startswith("Exact permutation test (hypergeometric) (two-sided)")


def test_permutation_test_two_sided_finds_a_reader_who_swaps_the_labels():
    all_wrong = ConfusionCounts(tp=0, fn=25, fp=25, tn=0)
    assert balanced_accuracy_permutation_test(all_wrong).p_value < 1e-13
    assert balanced_accuracy_permutation_test(all_wrong, alternative="greater").p_value == 1


@pytest.mark.parametrize(
    "counts",
    [
        ConfusionCounts(tp=16, fn=9, fp=10, tn=15),
        ConfusionCounts(tp=30, fn=5, fp=2, tn=13),
        ConfusionCounts(tp=3, fn=17, fp=8, tn=2),
        ConfusionCounts(tp=1, fn=0, fp=0, tn=1),
    ],
)
def test_permutation_test_greater_is_fishers_exact_test(counts):
    permutation = balanced_accuracy_permutation_test(counts, alternative="greater")
    _, exact = fisher_exact([[counts.tp, counts.fn], [counts.fp, counts.tn]], alternative="greater")
    assert permutation.p_value == pytest.approx(exact, rel=1e-12)


@pytest.mark.parametrize(
    "counts",
    [
        ConfusionCounts(tp=13, fn=12, fp=13, tn=12),
        ConfusionCounts(tp=18, fn=12, fp=12, tn=8),  # 3/5 called real in both classes
        ConfusionCounts(tp=30, fn=0, fp=20, tn=0),
    ],
)
def test_permutation_test_at_chance_level_gives_p_one(counts):
    assert counts.balanced_accuracy == pytest.approx(0.5)
    assert balanced_accuracy_permutation_test(counts).p_value == 1.0
    assert 0.5 < balanced_accuracy_permutation_test(counts, alternative="greater").p_value <= 1


def test_permutation_test_is_symmetric_in_the_labels():
    counts = ConfusionCounts(tp=20, fn=10, fp=7, tn=13)
    p_value = balanced_accuracy_permutation_test(counts).p_value
    assert 0.001 < p_value < 0.05
    swapped_calls = ConfusionCounts(tp=counts.fn, fn=counts.tp, fp=counts.tn, tn=counts.fp)
    swapped_truth = ConfusionCounts(tp=counts.tn, fn=counts.fp, fp=counts.fn, tn=counts.tp)
    assert balanced_accuracy_permutation_test(swapped_calls).p_value == pytest.approx(p_value, rel=1e-12)
    assert balanced_accuracy_permutation_test(swapped_truth).p_value == pytest.approx(p_value, rel=1e-12)


def test_permutation_test_is_deterministic():
    counts = ConfusionCounts(tp=140, fn=60, fp=80, tn=120)
    assert balanced_accuracy_permutation_test(counts) == balanced_accuracy_permutation_test(counts)


def _counts_of(truth: list[bool], called_real: tuple[int, ...]) -> ConfusionCounts:
    pairs = [(is_real, i in called_real) for i, is_real in enumerate(truth)]
    return ConfusionCounts(
        tp=pairs.count((True, True)),
        fn=pairs.count((True, False)),
        fp=pairs.count((False, True)),
        tn=pairs.count((False, False)),
    )


@pytest.mark.parametrize("alternative", ["two-sided", "greater"])
def test_permutation_test_matches_every_placement_of_the_real_calls(alternative):
    # N = 8 images, 3 real: every way to place K "real" calls among them, balanced accuracy in fractions.
    truth = [True] * 3 + [False] * 5

    def excess(counts: ConfusionCounts) -> Fraction:
        return Fraction(counts.tp, 3) + Fraction(counts.tn, 5) - 1

    for called_real in range(9):
        placements = [_counts_of(truth, chosen) for chosen in combinations(range(8), called_real)]
        for counts in set(placements):
            if alternative == "two-sided":
                as_extreme = sum(abs(excess(shuffle)) >= abs(excess(counts)) for shuffle in placements)
            else:
                as_extreme = sum(excess(shuffle) >= excess(counts) for shuffle in placements)
            result = balanced_accuracy_permutation_test(counts, alternative=alternative)
            assert result.p_value == pytest.approx(as_extreme / len(placements), rel=1e-12), counts


def test_permutation_test_of_random_readers_is_rarely_significant():
    rng = np.random.default_rng(7)
    p_values = []
    for _ in range(200):
        calls = rng.random(100) < 0.5
        truth = np.arange(100) < 50
        counts = ConfusionCounts(
            tp=int((truth & calls).sum()),
            fn=int((truth & ~calls).sum()),
            fp=int((~truth & calls).sum()),
            tn=int((~truth & ~calls).sum()),
        )
        p_values.append(balanced_accuracy_permutation_test(counts).p_value)
    p_values = np.array(p_values)
    assert (p_values < 0.05).mean() < 0.1
    assert 0.4 < p_values.mean() < 0.65
    assert 0.15 < (p_values < 0.25).mean() < 0.35


def test_calling_everything_real_fools_the_binomial_test_but_not_the_permutation_test():
    counts = ConfusionCounts(tp=300, fn=0, fp=200, tn=0)
    assert accuracy_binomial_test(counts).p_value < 1e-4
    assert balanced_accuracy_permutation_test(counts).p_value == 1


def test_permutation_test_rejects_an_unknown_side():
    with pytest.raises(ValueError, match="alternative"):
        balanced_accuracy_permutation_test(ALL_RIGHT_50, alternative="less")


def test_reader_statistics_bundles_the_single_functions():
    counts = ConfusionCounts(tp=16, fn=9, fp=10, tn=15)
    statistics = reader_statistics(counts, seed=2, n_resamples=500)
    assert statistics.sensitivity_interval == wilson_interval(16, 25)
    assert statistics.specificity_interval == wilson_interval(15, 25)
    assert statistics.accuracy_interval == wilson_interval(31, 50)
    assert statistics.balanced_accuracy_interval == balanced_accuracy_bootstrap_interval(
        counts, n_resamples=500, seed=2
    )
    assert statistics.balanced_accuracy_test == balanced_accuracy_permutation_test(counts)
    assert statistics.accuracy_test == accuracy_binomial_test(counts)


# The paper's Table 1


def test_paper_table1_accuracy_is_balanced_accuracy_of_its_per_class_percentages():
    rows = paper_rows()
    assert [row["reader"] for row in rows] == ["NR1", "NR2", "NNR1", "NNR2", "NNR3"]
    for row in rows:
        counts = ConfusionCounts(
            tp=int(row["tp_percent"]), fn=int(row["fn_percent"]), fp=int(row["fp_percent"]), tn=int(row["tn_percent"])
        )
        assert (counts.n_real, counts.n_synthetic) == (100, 100), row["reader"]
        # The paper rounds half-way values both ways (0.555 -> 0.55, 0.715 -> 0.72).
        assert counts.balanced_accuracy == pytest.approx(float(row["accuracy"]), abs=0.0051), row["reader"]


def test_the_papers_groups_get_an_interval_whatever_their_size():
    """Two neuroradiologists and three others, each on cases of their own (the paper's table gives
    no shared cases): ORH's covariance term is 0 and the interval is the t-interval over readers."""
    from scipy.stats import ttest_1samp

    from readerstudy.results.mrmc import ReaderCalls, orh_group_interval

    def calls(row) -> ReaderCalls:
        trials = []
        for truth, right, wrong in (("real", "tp_percent", "fn_percent"), ("synthetic", "tn_percent", "fp_percent")):
            other = "synthetic" if truth == "real" else "real"
            trials += [(truth, truth)] * int(row[right]) + [(truth, other)] * int(row[wrong])
        return ReaderCalls(row["reader"], tuple((f"{row['reader']}:{n}", t, c) for n, (t, c) in enumerate(trials)))

    for group in ("NR", "NNR"):
        rows = [row for row in paper_rows() if row["group"] == group]
        interval = orh_group_interval([calls(row) for row in rows], metric="balanced_accuracy")
        thetas = [float(calls_ba) for calls_ba in (ConfusionCounts(
            tp=int(r["tp_percent"]), fn=int(r["fn_percent"]), fp=int(r["fp_percent"]), tn=int(r["tn_percent"])
        ).balanced_accuracy for r in rows)]  # fmt: skip
        expected = ttest_1samp(thetas, 0.5).confidence_interval(0.95)
        assert interval.df == pytest.approx(len(rows) - 1)
        assert interval.mean == pytest.approx(np.mean(thetas))
        assert (interval.low, interval.high) == pytest.approx((max(expected.low, 0), min(expected.high, 1)))


# Pooling by group


def test_pooling_five_or_more_readers_gives_a_bootstrap_interval():
    values = [0.55, 0.6, 0.62, 0.7, 0.71, 0.8]
    pooled = pooled_mean(values, seed=5)
    assert pooled.mean == pytest.approx(np.mean(values))
    assert pooled.n_readers == 6
    assert 0.55 <= pooled.interval.low < pooled.mean < pooled.interval.high <= 0.8
    assert pooled.note == ""
    assert "over readers" in pooled.interval.label


def test_pooling_leaves_out_readers_without_a_defined_value():
    pooled = pooled_mean([0.6, None, 0.8])
    assert (pooled.mean, pooled.n_readers) == (pytest.approx(0.7), 2)
    assert pooled_mean([None, None]).mean is None


# Agreement in fixed-set mode


def test_identical_readers_agree_perfectly():
    calls = dict(zip(map(str, range(40)), random_calls(np.random.default_rng(0), 40), strict=True))
    agreement = reader_agreement({"A": calls, "B": calls, "C": calls})
    assert agreement.fleiss_kappa == pytest.approx(1)
    assert [(pair.reader_a, pair.reader_b) for pair in agreement.pairwise] == [("A", "B"), ("A", "C"), ("B", "C")]
    assert all(pair.cohen_kappa == pytest.approx(1) for pair in agreement.pairwise)
    assert (agreement.n_cases, agreement.n_cases_dropped) == (40, 0)


def test_independent_random_readers_agree_by_chance_only():
    rng = np.random.default_rng(1)
    cases = [f"case{i}" for i in range(3000)]
    calls = {reader: dict(zip(cases, random_calls(rng, 3000), strict=True)) for reader in "ABC"}
    agreement = reader_agreement(calls)
    assert abs(agreement.fleiss_kappa) < 0.05
    assert all(abs(pair.cohen_kappa) < 0.05 for pair in agreement.pairwise)


def test_kappas_match_hand_computed_values():
    # Cohen: p_o = 3/4, p_e = 1/2·1/4 + 1/2·3/4 = 1/2, κ = 1/2.
    # Fleiss pools the marginals: p_real = 3/8, p_e = 34/64, κ = (3/4 − 34/64) / (1 − 34/64) = 7/15.
    a = {"1": "real", "2": "real", "3": "synthetic", "4": "synthetic"}
    b = {"1": "real", "2": "synthetic", "3": "synthetic", "4": "synthetic"}
    agreement = reader_agreement({"A": a, "B": b})
    assert agreement.pairwise[0].cohen_kappa == pytest.approx(0.5)
    assert agreement.fleiss_kappa == pytest.approx(7 / 15)


def test_readers_who_always_disagree_have_kappa_minus_one():
    a = {"1": "real", "2": "synthetic"}
    b = {"1": "synthetic", "2": "real"}
    assert reader_agreement({"A": a, "B": b}).pairwise[0].cohen_kappa == pytest.approx(-1)


def test_cases_not_called_by_every_reader_are_dropped_and_counted():
    a = {"1": "real", "2": "synthetic", "3": "real", "4": "synthetic", "5": "real"}
    b = {"1": "real", "2": "synthetic", "3": "real", "4": None}  # 4 expired, 5 never shown
    agreement = reader_agreement({"A": a, "B": b})
    assert (agreement.n_cases, agreement.n_cases_dropped) == (3, 2)
    assert agreement.pairwise[0].cohen_kappa == pytest.approx(1)


def test_kappa_is_none_when_undefined():
    same = {"1": "real", "2": "real"}
    assert reader_agreement({"A": same, "B": same}).fleiss_kappa is None
    assert reader_agreement({"A": same, "B": same}).pairwise[0].cohen_kappa is None
    no_common_case = reader_agreement({"A": {"1": "real"}, "B": {"2": "synthetic"}})
    assert no_common_case.n_cases == 0
    assert no_common_case.fleiss_kappa is None
    assert no_common_case.pairwise[0].cohen_kappa is None
    alone = reader_agreement({"A": {"1": "real", "2": "synthetic"}})
    assert (alone.fleiss_kappa, alone.pairwise) == (None, ())


def test_agreement_rejects_unknown_calls():
    with pytest.raises(ValueError, match="real"):
        reader_agreement({"A": {"1": "fake"}, "B": {"1": "real"}})


# Confidence and ROC


def test_how_real_score_runs_from_certainly_synthetic_to_certainly_real():
    assert [how_real_score("synthetic", c) for c in (5, 4, 3, 2, 1)] == [1, 2, 3, 4, 5]
    assert [how_real_score("real", c) for c in (1, 2, 3, 4, 5)] == [6, 7, 8, 9, 10]


@pytest.mark.parametrize(("call", "confidence"), [("real", 0), ("real", 6), ("synthetic", None), ("maybe", 3)])
def test_how_real_score_rejects_what_is_off_the_scale(call, confidence):
    with pytest.raises(ValueError):
        how_real_score(call, confidence)


def test_roc_auc_of_perfectly_ordered_scores_is_one():
    outcomes = [("real", "real", c) for c in (1, 3, 5)] + [("synthetic", "synthetic", c) for c in (1, 4)]
    roc = reader_roc(outcomes)
    assert roc.auc == 1
    assert (roc.n_real, roc.n_synthetic) == (3, 2)
    assert roc.points[0].threshold is None
    assert (roc.points[0].false_positive_rate, roc.points[0].true_positive_rate) == (0, 0)
    assert (roc.points[-1].false_positive_rate, roc.points[-1].true_positive_rate) == (1, 1)
    assert [point.threshold for point in roc.points[1:]] == [10, 8, 6, 5, 2]


def test_roc_auc_of_constant_scores_is_one_half():
    outcomes = [("real", "real", 3)] * 4 + [("synthetic", "real", 3)] * 6
    assert reader_roc(outcomes).auc == 0.5


def test_roc_auc_of_inverted_scores_is_zero():
    assert reader_roc([("real", "synthetic", 5), ("synthetic", "real", 5)]).auc == 0


def test_roc_auc_matches_the_mann_whitney_statistic():
    rng = np.random.default_rng(3)
    truths = rng.choice(["real", "synthetic"], size=80)
    calls, confidences = random_calls(rng, 80), rng.integers(1, 6, size=80)
    roc = reader_roc(zip(truths, calls, (int(c) for c in confidences), strict=True))
    scores = np.array([how_real_score(call, int(c)) for call, c in zip(calls, confidences, strict=True)])
    u_statistic, _ = mannwhitneyu(scores[truths == "real"], scores[truths == "synthetic"])
    assert roc.auc == pytest.approx(u_statistic / (roc.n_real * roc.n_synthetic))


def test_roc_leaves_out_expired_trials_and_needs_both_classes():
    outcomes = [("real", "real", 4), ("synthetic", None, None), ("synthetic", "real", None)]
    roc = reader_roc(outcomes)
    assert (roc.auc, roc.n_real, roc.n_synthetic, roc.points) == (None, 1, 0, ())
