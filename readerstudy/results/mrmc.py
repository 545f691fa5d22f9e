"""The confidence interval of a group's mean accuracy with readers and cases both random, pure (no Django).

Method: Obuchowski–Rockette–Hillis (ORH) for a single test, as Hillis (2007) gives it and the R
package MRMCaov implements it. Each reader j has a metric θ̂ⱼ over the trials they called
(accuracy, or balanced accuracy); the group's figure is their mean θ̄ over r readers. Its variance
has two parts: readers differ (MS(R), the variance of the θ̂ⱼ), and readers who read the same
cases err together (Cov₂, the mean covariance of two different readers' θ̂ over case samples,
estimated by the jackknife over cases). Then

    SE² = MS(R)/r + max(Cov₂, 0),   df = (MS(R) + r·max(Cov₂, 0))² / (MS(R)²/(r − 1)),

and the interval is θ̄ ± t(1 − α/2, df)·SE. With disjoint case sets (random-set studies: each
reader their own images) Cov₂ is 0 (up to rounding with one trial per key; a negligible residue,
around 1e-9, when keys hold several slices) and this is the t-interval over readers; with one
fixed set for everyone Cov₂ widens it for the cases every reader shares. A case is whatever
shares a key: a real subject's slices are one case, so the jackknife leaves the person out at once.

Positive class = real (readerstudy.reading.counts). An undefined figure is ``None``, never NaN.
"""

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from readerstudy.reading.counts import REAL, SYNTHETIC

METRICS = ("accuracy", "balanced_accuracy")
# The last axis of the count arrays below: TP, FN, FP, TN.
_CELL = {(REAL, REAL): 0, (REAL, SYNTHETIC): 1, (SYNTHETIC, REAL): 2, (SYNTHETIC, SYNTHETIC): 3}


@dataclass(frozen=True)
class ReaderCalls:
    """One reader's called trials: (case key, truth, call), truth and call "real" or "synthetic".

    Expired trials are not given. Trials that share a case key are one case to the jackknife.
    """

    reader: str
    trials: tuple[tuple[Hashable, str, str], ...]


@dataclass(frozen=True)
class OrhInterval:
    """The ORH interval of a group's mean metric, with the components it was made from.

    With one reader there is no interval (se, df, low, high, p_value None), and MS(R) and Cov₂,
    which need two readers, are None too.
    """

    metric: str  # "accuracy" or "balanced_accuracy"
    mean: float  # θ̄, the readers' mean
    n_readers: int
    n_cases: int  # c, cases in the union of the readers' case keys
    ms_r: float | None  # MS(R)
    cov2: float | None  # the jackknife Cov₂ as computed (may be negative; the SE uses max(Cov₂, 0))
    se: float | None
    df: float | None  # math.inf when MS(R) = 0 and Cov₂ > 0 (then the normal quantile)
    low: float | None
    high: float | None
    p_value: float | None  # two-sided t test of θ̄ against chance with the same SE and df
    method: str = "Obuchowski-Rockette-Hillis (jackknife covariance)"


def orh_from_components(
    *,
    mean: float,
    ms_r: float,
    cov2: float,
    n_readers: int,
    confidence_level: float = 0.95,
    chance: float = 0.5,
    metric: str = "",
    n_cases: int = 0,
) -> OrhInterval:
    """The ORH interval from θ̄, MS(R) and Cov₂ (Hillis 2007, single test), clipped to [0, 1].

    Below two readers: no interval. SE = 0 (readers all equal and Cov₂ ≤ 0): the interval is
    [θ̄, θ̄] and there is no p-value (df is 0/0, None).
    """
    from scipy.stats import norm, t

    if n_readers < 2:
        return OrhInterval(metric, mean, n_readers, n_cases, None, None, None, None, None, None, None)
    case_part = max(cov2, 0.0)
    variance = ms_r / n_readers + case_part
    if variance <= 0:
        return OrhInterval(metric, mean, n_readers, n_cases, ms_r, cov2, 0.0, None, mean, mean, None)
    df = (ms_r + n_readers * case_part) ** 2 / (ms_r**2 / (n_readers - 1)) if ms_r > 0 else math.inf
    distribution = norm() if math.isinf(df) else t(df)
    se = math.sqrt(variance)
    half_width = float(distribution.ppf(1 - (1 - confidence_level) / 2)) * se
    p_value = float(2 * distribution.sf(abs(mean - chance) / se))
    low, high = max(mean - half_width, 0.0), min(mean + half_width, 1.0)
    return OrhInterval(metric, mean, n_readers, n_cases, ms_r, cov2, se, df, low, high, p_value)


def _metric_of_counts(counts: np.ndarray, metric: str) -> np.ndarray:
    """The metric of count arrays whose last axis is TP, FN, FP, TN; NaN where undefined."""
    tp, fn, fp, tn = np.moveaxis(counts, -1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "accuracy":
            return (tp + tn) / (tp + fn + fp + tn)
        if metric == "balanced_accuracy":
            return (tp / (tp + fn) + tn / (tn + fp)) / 2
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def _counts_by_case(readers: Sequence[ReaderCalls]) -> np.ndarray:
    """Counts per reader, per case key in the union, per cell: shape (readers, cases, 4)."""
    case_index: dict[Hashable, int] = {}
    rows, columns, cells = [], [], []
    for row, reader in enumerate(readers):
        for key, truth, call in reader.trials:
            if (truth, call) not in _CELL:
                raise ValueError(f"truth and call must be 'real' or 'synthetic', got {truth!r}, {call!r}")
            rows.append(row)
            columns.append(case_index.setdefault(key, len(case_index)))
            cells.append(_CELL[truth, call])
    counts = np.zeros((len(readers), len(case_index), 4))
    np.add.at(counts, (np.array(rows, dtype=int), np.array(columns, dtype=int), np.array(cells, dtype=int)), 1)
    return counts


def _defined_readers(readers: Sequence[ReaderCalls], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(counts by case, θ̂) of the readers whose metric is defined, over the union of their cases."""
    counts = _counts_by_case(readers)
    thetas = _metric_of_counts(counts.sum(axis=1), metric)
    defined = ~np.isnan(thetas)
    counts = counts[defined]
    # A case only a left-out reader called is no case of the group's.
    return counts[:, counts.sum(axis=(0, 2)) > 0], thetas[defined]


def _jackknife_cov2(counts: np.ndarray, thetas: np.ndarray, metric: str) -> float:
    n_readers, n_cases = counts.shape[:2]
    left_out = _metric_of_counts(counts.sum(axis=1, keepdims=True) - counts, metric)  # θ̂ⱼ₍₋ₖ₎, (readers, cases)
    # Leaving a case out can leave a reader without a class (balanced accuracy) or without any
    # call (a reader of that one case): that pseudo-value is the reader's full θ̂ⱼ, as if the case
    # were one they never read, so a reader is never dropped from one term of the sum only.
    left_out = np.where(np.isnan(left_out), thetas[:, None], left_out)
    centred = left_out - left_out.mean(axis=1, keepdims=True)
    covariance = (n_cases - 1) / n_cases * centred @ centred.T
    return float((covariance.sum() - np.trace(covariance)) / (n_readers * (n_readers - 1)))


def jackknife_cov2(readers: Sequence[ReaderCalls], metric: str) -> tuple[float, int]:
    """(Cov₂, c): the jackknife covariance of two different readers' metric over cases, and c.

    Leaves out one case key at a time over the union of the readers' keys (c of them); a reader
    who never called the case keeps their θ̂ⱼ. Cov(j, j′) = (c − 1)/c · Σₖ (θ̂ⱼ₍₋ₖ₎ − θ̂ⱼ₍·₎)(θ̂ⱼ′₍₋ₖ₎ − θ̂ⱼ′₍·₎);
    Cov₂ is its mean over ordered pairs j ≠ j′. Readers whose metric is undefined are left out,
    as in ``orh_group_interval``; fewer than two readers left is an error.
    """
    counts, thetas = _defined_readers(readers, metric)
    if len(thetas) < 2:
        raise ValueError(f"Cov₂ needs two readers with a defined {metric}, got {len(thetas)}")
    return _jackknife_cov2(counts, thetas, metric), counts.shape[1]


def orh_group_interval(
    readers: Sequence[ReaderCalls], *, metric: str, confidence_level: float = 0.95
) -> OrhInterval | None:
    """The ORH interval of the readers' mean ``metric``; None when no reader has it defined.

    Every reader weighs the same, whatever their number of trials. Readers whose metric is
    undefined (no calls; for balanced accuracy, a class never shown) are left out.
    """
    counts, thetas = _defined_readers(readers, metric)
    n_readers, n_cases = counts.shape[:2]
    if not n_readers:
        return None
    mean = float(thetas.mean())
    if n_readers < 2:  # no MS(R), no Cov₂: orh_from_components gives the mean alone
        return orh_from_components(mean=mean, ms_r=0.0, cov2=0.0, n_readers=1, metric=metric, n_cases=n_cases)
    # Readers all equal: MS(R) exactly 0 (so df = ∞ when Cov₂ > 0), not a rounding residue of the mean.
    ms_r = 0.0 if np.ptp(thetas) == 0 else float(np.var(thetas, ddof=1))
    return orh_from_components(
        mean=mean,
        ms_r=ms_r,
        cov2=_jackknife_cov2(counts, thetas, metric),
        n_readers=n_readers,
        confidence_level=confidence_level,
        metric=metric,
        n_cases=n_cases,
    )
