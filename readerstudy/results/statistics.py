"""Statistics of a reader study's results, as pure functions (no Django, no database).

Convention (DESIGN.md, "Scoring convention"): positive class = real. TP = real called real,
FN = real called synthetic, FP = synthetic called real, TN = synthetic called synthetic. Only
main-phase trials belong here; expired trials are kept out of TP..TN and counted on their own.

A value that is undefined (a rate with a zero denominator, an interval with no trials, κ when
every call is the same) is ``None``, never NaN, so results serialise to JSON as ``null``.

scipy, statsmodels and scikit-learn are imported by the functions that use them: a web process
that serves reading pages, the admin or the API never loads them; a results page does, once.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import Literal

import numpy as np

from readerstudy.reading.counts import (  # noqa: F401  (the scoring convention; re-exported for callers)
    CLASSES,
    COUNT_COLUMNS,
    RATE_COLUMNS,
    REAL,
    ROW_COLUMNS,
    SYNTHETIC,
    ConfusionCounts,
    confusion_counts,
)

# Below this many readers a bootstrap over readers has too few distinct resamples to mean much.
MIN_READERS_FOR_INTERVAL = 5


@dataclass(frozen=True)
class Interval:
    """A confidence interval with the name of the method that made it."""

    low: float
    high: float
    method: str
    confidence_level: float = 0.95

    @property
    def label(self) -> str:
        return f"{self.method}, {self.confidence_level:.0%} interval"


def wilson_interval(successes: int, trials: int, *, confidence_level: float = 0.95) -> Interval | None:
    """Wilson score interval of a proportion; None with no trials.

    Wilson rather than the normal approximation because reader studies have small n and
    proportions near 0 or 1, where the normal interval leaves [0, 1] or collapses to a point.
    """
    from statsmodels.stats.proportion import proportion_confint

    if not trials:
        return None
    low, high = proportion_confint(successes, trials, alpha=1 - confidence_level, method="wilson")
    return Interval(float(max(low, 0.0)), float(min(high, 1.0)), "Wilson score", confidence_level)


def balanced_accuracy_bootstrap_interval(
    counts: ConfusionCounts, *, n_resamples: int = 2000, seed: int = 0, confidence_level: float = 0.95
) -> Interval | None:
    """Class-stratified percentile bootstrap interval of balanced accuracy; None without both classes.

    Real and synthetic trials are resampled separately, with replacement, so every resample keeps
    the study's class sizes. Within a class each trial is right or wrong, so resampling n trials of
    which k were right is a Binomial(n, k/n) draw. A reader with every call right gets [1, 1]:
    percentile intervals cannot reach past what was observed; the Wilson intervals of the
    per-class rates can.
    """
    if not counts.n_real or not counts.n_synthetic:
        return None
    rng = np.random.default_rng(seed)
    sensitivity = rng.binomial(counts.n_real, counts.tp / counts.n_real, n_resamples) / counts.n_real
    specificity = rng.binomial(counts.n_synthetic, counts.tn / counts.n_synthetic, n_resamples) / counts.n_synthetic
    tail = (1 - confidence_level) / 2
    low, high = np.quantile((sensitivity + specificity) / 2, [tail, 1 - tail])
    return Interval(float(low), float(high), "Class-stratified percentile bootstrap", confidence_level)


@dataclass(frozen=True)
class HypothesisTest:
    """The outcome of a test against chance, named so a results table can print it."""

    test: str
    null_hypothesis: str
    alternative: str
    statistic: float
    p_value: float
    n_trials: int
    n_permutations: int | None = None

    @property
    def label(self) -> str:
        return f"{self.test} ({self.alternative}), H0: {self.null_hypothesis}"


def accuracy_binomial_test(counts: ConfusionCounts, *, chance: float = 0.5) -> HypothesisTest | None:
    """Exact two-sided binomial test of accuracy on counts against ``chance``; None with no calls.

    Two-sided because a reader well below chance (the paper's NR2, 0.30) tells the classes apart
    as surely as one well above, only with the labels swapped. 0.5 is chance for accuracy only
    when real and synthetic images are equally many; otherwise see the permutation test.
    """
    from scipy.stats import binomtest

    if not counts.called:
        return None
    result = binomtest(counts.tp + counts.tn, counts.called, chance, alternative="two-sided")
    return HypothesisTest(
        test="Exact binomial test",
        null_hypothesis=f"accuracy = {chance:g}",
        alternative="two-sided",
        statistic=counts.accuracy,
        p_value=float(result.pvalue),
        n_trials=counts.called,
    )


def balanced_accuracy_permutation_test(
    counts: ConfusionCounts, *, alternative: Literal["two-sided", "greater"] = "two-sided"
) -> HypothesisTest | None:
    """Exact permutation test of balanced accuracy against chance; None without both classes.

    The reader's calls are shuffled against the truth labels. A shuffle keeps how many images
    were called real (K of N), so the number of those that land on real images is hypergeometric
    (population N, n_real successes, K draws): summing its probabilities over the shuffles as
    extreme as observed gives the exact p, with no Monte Carlo error and no seed. Under the
    shuffles balanced accuracy averages exactly 0.5 whatever the class mix.

    "two-sided" (default) counts shuffles at least as far from 0.5 as observed, in either
    direction, matching the binomial test; "greater" counts those at least as high ("better than
    chance"), and then is Fisher's exact test of the 2×2 table.
    """
    from scipy.stats import hypergeom

    n_real, n_synthetic = counts.n_real, counts.n_synthetic
    if not n_real or not n_synthetic:
        return None
    n_images, called_real = n_real + n_synthetic, counts.tp + counts.fp
    tp = np.arange(max(0, called_real - n_synthetic), min(called_real, n_real) + 1)
    # TP·N − n_real·K = 2·n_real·n_synthetic·(balanced accuracy − 0.5), kept in integers so shuffles
    # that tie with the observed table count exactly.
    shuffled, observed = tp * n_images - n_real * called_real, counts.tp * n_images - n_real * called_real
    if alternative == "two-sided":
        as_extreme = np.abs(shuffled) >= abs(observed)
    elif alternative == "greater":
        as_extreme = shuffled >= observed
    else:
        raise ValueError(f"alternative must be 'two-sided' or 'greater', got {alternative!r}")
    # Every shuffle as extreme (a reader at chance): exactly 1, not the pmf's sum, a hair off 1.
    p_value = 1.0 if as_extreme.all() else float(hypergeom.pmf(tp[as_extreme], n_images, n_real, called_real).sum())
    return HypothesisTest(
        test="Exact permutation test (hypergeometric)",
        null_hypothesis="balanced accuracy = 0.5 (calls independent of truth)",
        alternative=alternative,
        statistic=counts.balanced_accuracy,
        p_value=min(p_value, 1.0),
        n_trials=counts.called,
    )


@dataclass(frozen=True)
class ReaderStatistics:
    """Everything the results page shows for one reader."""

    counts: ConfusionCounts
    accuracy_interval: Interval | None
    sensitivity_interval: Interval | None
    specificity_interval: Interval | None
    balanced_accuracy_interval: Interval | None
    accuracy_test: HypothesisTest | None
    balanced_accuracy_test: HypothesisTest | None


def reader_statistics(counts: ConfusionCounts, *, seed: int = 0, n_resamples: int = 2000) -> ReaderStatistics:
    """Intervals and tests of one reader's counts, with the defaults of the functions above."""
    return ReaderStatistics(
        counts=counts,
        accuracy_interval=wilson_interval(counts.tp + counts.tn, counts.called),
        sensitivity_interval=wilson_interval(counts.tp, counts.n_real),
        specificity_interval=wilson_interval(counts.tn, counts.n_synthetic),
        balanced_accuracy_interval=balanced_accuracy_bootstrap_interval(counts, n_resamples=n_resamples, seed=seed),
        accuracy_test=accuracy_binomial_test(counts),
        balanced_accuracy_test=balanced_accuracy_permutation_test(counts),
    )


@dataclass(frozen=True)
class PooledMetric:
    """Mean of one metric over a group's readers, with a bootstrap interval or, if too few, the range."""

    mean: float | None
    n_readers: int
    interval: Interval | None
    minimum: float | None
    maximum: float | None
    note: str = ""


def pooled_mean(
    values: Iterable[float | None], *, n_resamples: int = 2000, seed: int = 0, confidence_level: float = 0.95
) -> PooledMetric:
    """Mean over readers (each reader weighs the same, whatever their number of trials): the group
    interval before issue #20, kept as the baseline of ``benchmarks/bench_group_intervals.py``
    (groups now get the ORH interval, ``readerstudy.results.groups``).

    With MIN_READERS_FOR_INTERVAL readers or more: a percentile bootstrap interval, resampling
    readers with replacement. With fewer: the range only, and a note saying why. Readers whose
    value is undefined (None) are left out.
    """
    defined = np.array([value for value in values if value is not None], dtype=float)
    if not defined.size:
        return PooledMetric(None, 0, None, None, None, "No reader has a defined value.")
    mean, low, high = float(defined.mean()), float(defined.min()), float(defined.max())
    if defined.size < MIN_READERS_FOR_INTERVAL:
        note = (
            f"Range, not an interval: {defined.size} reader(s); a bootstrap over fewer than "
            f"{MIN_READERS_FOR_INTERVAL} readers has too few distinct resamples to be trusted."
        )
        return PooledMetric(mean, int(defined.size), None, low, high, note)
    rng = np.random.default_rng(seed)
    means = rng.choice(defined, size=(n_resamples, defined.size), replace=True).mean(axis=1)
    tail = (1 - confidence_level) / 2
    interval_low, interval_high = np.quantile(means, [tail, 1 - tail])
    interval = Interval(
        float(interval_low), float(interval_high), "Percentile bootstrap over readers", confidence_level
    )
    return PooledMetric(mean, int(defined.size), interval, low, high)


@dataclass(frozen=True)
class PairwiseKappa:
    reader_a: str
    reader_b: str
    cohen_kappa: float | None


@dataclass(frozen=True)
class Agreement:
    """Agreement between readers who all called the same cases (fixed-set mode)."""

    readers: tuple[str, ...]
    n_cases: int
    n_cases_dropped: int
    fleiss_kappa: float | None
    pairwise: tuple[PairwiseKappa, ...]


def reader_agreement(calls_by_reader: Mapping[str, Mapping[str, str | None]]) -> Agreement:
    """Fleiss' κ over all readers and Cohen's κ for every pair, on the cases every reader called.

    A case some reader left uncalled (expired: call None or missing) is dropped for everyone, so
    all κ values rest on the same cases; ``n_cases_dropped`` says how many. κ is None when it is
    undefined: fewer than two readers (Fleiss), no common cases, or every call the same (then
    chance agreement is 1 and κ is 0/0).
    """
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    readers = tuple(calls_by_reader)
    called = {reader: {case for case, call in calls.items() if call} for reader, calls in calls_by_reader.items()}
    all_cases = set().union(*called.values()) if called else set()
    common = sorted(set.intersection(*called.values())) if called else []
    if any(calls_by_reader[r][case] not in CLASSES for r in readers for case in common):
        raise ValueError("calls must be 'real' or 'synthetic'")
    # Rows are cases, columns readers; 1 = real, 0 = synthetic.
    matrix = np.array([[calls_by_reader[r][case] == REAL for r in readers] for case in common], dtype=int)
    matrix = matrix.reshape(len(common), len(readers))

    def undefined(columns: np.ndarray) -> bool:
        return not columns.size or len(np.unique(columns)) < 2

    fleiss = None
    if len(readers) >= 2 and not undefined(matrix):
        fleiss = float(fleiss_kappa(aggregate_raters(matrix, n_cat=2)[0]))
    pairwise = []
    for (i, reader_a), (j, reader_b) in combinations(enumerate(readers), 2):
        pair = matrix[:, [i, j]]
        kappa = None if undefined(pair) else float(cohen_kappa_score(pair[:, 0], pair[:, 1], labels=[0, 1]))
        pairwise.append(PairwiseKappa(reader_a, reader_b, kappa))
    return Agreement(readers, len(common), len(all_cases) - len(common), fleiss, tuple(pairwise))


def how_real_score(call: str, confidence: int) -> int:
    """Call and confidence (1–5) folded into one 1–10 scale: 10 = certainly real, 1 = certainly synthetic.

    "real" with confidence c → 5 + c (6..10); "synthetic" with confidence c → 6 − c (1..5). Used
    for ROC analysis and for the iMRMC export.
    """
    if confidence not in range(1, 6):
        raise ValueError(f"confidence must be 1 to 5, got {confidence!r}")
    if call == REAL:
        return 5 + confidence
    if call == SYNTHETIC:
        return 6 - confidence
    raise ValueError(f"call must be 'real' or 'synthetic', got {call!r}")


@dataclass(frozen=True)
class RocPoint:
    """One point of an ROC curve: images scored at or above ``threshold`` counted as called real.

    The first point (0, 0) has threshold None: nothing is called real.
    """

    threshold: int | None
    false_positive_rate: float
    true_positive_rate: float


@dataclass(frozen=True)
class ReaderRoc:
    auc: float | None
    n_real: int
    n_synthetic: int
    points: tuple[RocPoint, ...]


def reader_roc(outcomes: Iterable[tuple[str, str | None, int | None]]) -> ReaderRoc:
    """ROC AUC and curve of one reader from (truth, call, confidence) triples, real = positive.

    Trials without a call or a confidence (expired, or confidence not collected) are left out.
    AUC and points are None / empty unless both classes remain. Constant scores give AUC 0.5.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    truths, scores = [], []
    for truth, call, confidence in outcomes:
        if call and confidence is not None:
            if truth not in CLASSES:
                raise ValueError(f"truth must be 'real' or 'synthetic', got {truth!r}")
            truths.append(int(truth == REAL))
            scores.append(how_real_score(call, confidence))
    n_real = sum(truths)
    n_synthetic = len(truths) - n_real
    if not n_real or not n_synthetic:
        return ReaderRoc(None, n_real, n_synthetic, ())
    fpr, tpr, thresholds = roc_curve(truths, scores, drop_intermediate=False)
    points = tuple(
        RocPoint(None if np.isinf(threshold) else int(threshold), float(x), float(y))
        for threshold, x, y in zip(thresholds, fpr, tpr, strict=True)
    )
    return ReaderRoc(float(roc_auc_score(truths, scores)), n_real, n_synthetic, points)
