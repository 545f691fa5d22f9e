"""Benchmark: how often a group's 95 % interval of mean accuracy covers the truth, ORH against today's bootstrap.

Simulated reader studies whose true mean is known (a probit model). Case k has a class (25 real,
25 synthetic per reader) and a latent difficulty c_k ~ N(0, σ_c²); reader j a skill r_j ~ N(0, σ_r²).
Reader j calls case k right when μ_class + r_j + c_k + ε_jk > 0, ε_jk ~ N(0, 1) the reader×case
interaction; μ_real < μ_synthetic (synthetic images are the easier class to call right). 5 % of
trials expire at random and are left out, which is all that makes accuracy differ from balanced
accuracy here (both classes are 25 strong). Over the population of readers and cases a class is
called right with probability Φ(μ_class / √(1 + σ_r² + σ_c²)), and both metrics' true mean over
readers is the average of the two classes' (checked once against a large sample).

Designs: random sets (each reader their own 50 fresh cases: disjoint case keys) and a fixed set
(every reader the same 50 cases: shared keys), with 3, 5 and 10 readers; N_STUDIES studies each.
Per design: the coverage of the 95 % ORH interval (readerstudy.results.mrmc) of mean accuracy
and of mean balanced accuracy, and of the baseline, today's `pooled_mean` (a percentile bootstrap
over readers; with fewer than 5 readers it gives no interval, only the range min–max, which is
counted as its interval here). Target: ORH coverage 0.93–0.97 with 5 and 10 readers, ≥ 0.91 with 3.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from readerstudy.results.mrmc import METRICS, ReaderCalls, orh_group_interval
from readerstudy.results.statistics import pooled_mean

MU_REAL, MU_SYNTHETIC = 0.4, 1.0
SIGMA_READER, SIGMA_CASE = 0.3, 0.8
EXPIRY_SHARE = 0.05
CASES_PER_CLASS = 25
READER_COUNTS = (3, 5, 10)
N_STUDIES = 4000
SEED = 20261203
TRUTH = np.array(["real"] * CASES_PER_CLASS + ["synthetic"] * CASES_PER_CLASS)
WRONG_CALL = np.array(["synthetic"] * CASES_PER_CLASS + ["real"] * CASES_PER_CLASS)
MU = np.where(TRUTH == "real", MU_REAL, MU_SYNTHETIC)


def true_mean() -> float:
    """Both metrics' mean over the population of readers and cases (the two classes' average)."""
    from scipy.stats import norm

    scale = np.sqrt(1 + SIGMA_READER**2 + SIGMA_CASE**2)
    return float((norm.cdf(MU_REAL / scale) + norm.cdf(MU_SYNTHETIC / scale)) / 2)


def sampled_mean(rng: np.random.Generator, n_draws: int = 4_000_000) -> tuple[float, float]:
    """The same mean from n_draws independent (reader, case, interaction) draws per class, and its SE."""
    per_class = [
        (mu + rng.normal(0, SIGMA_READER, n_draws) + rng.normal(0, SIGMA_CASE, n_draws) + rng.normal(0, 1, n_draws) > 0)
        for mu in (MU_REAL, MU_SYNTHETIC)
    ]
    standard_error = np.sqrt(sum(right.var() / n_draws for right in per_class)) / 2
    return float(np.mean([right.mean() for right in per_class])), float(standard_error)


def simulate(rng: np.random.Generator, *, n_readers: int, fixed_set: bool) -> tuple[np.ndarray, np.ndarray]:
    """(right, expired), booleans of shape (studies, readers, cases)."""
    shape = (N_STUDIES, n_readers, 2 * CASES_PER_CLASS)
    skill = rng.normal(0, SIGMA_READER, (N_STUDIES, n_readers, 1))
    difficulty = rng.normal(0, SIGMA_CASE, (N_STUDIES, 1, shape[2]) if fixed_set else shape)
    right = MU + skill + difficulty + rng.normal(0, 1, shape) > 0
    return right, rng.random(shape) < EXPIRY_SHARE


def reader_metrics(right: np.ndarray, expired: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy and balanced accuracy per study and reader, from the arrays (called trials only)."""
    called = ~expired
    is_real = TRUTH == "real"
    right_real, right_synthetic = (right & called)[..., is_real].sum(-1), (right & called)[..., ~is_real].sum(-1)
    called_real, called_synthetic = called[..., is_real].sum(-1), called[..., ~is_real].sum(-1)
    return {
        "accuracy": (right_real + right_synthetic) / (called_real + called_synthetic),
        "balanced_accuracy": (right_real / called_real + right_synthetic / called_synthetic) / 2,
    }


def study_readers(right: np.ndarray, expired: np.ndarray, *, fixed_set: bool) -> list[ReaderCalls]:
    """One study's readers as the results app would give them: expired trials left out."""
    calls = np.where(right, TRUTH, WRONG_CALL)
    readers = []
    for j in range(right.shape[0]):
        keys = range(right.shape[1]) if fixed_set else [(j, k) for k in range(right.shape[1])]
        trials = zip(keys, TRUTH, calls[j], expired[j], strict=True)
        readers.append(ReaderCalls(f"R{j}", tuple((key, t, c) for key, t, c, gone in trials if not gone)))
    return readers


def design_coverage(rng: np.random.Generator, *, n_readers: int, fixed_set: bool, truth: float) -> dict:
    right, expired = simulate(rng, n_readers=n_readers, fixed_set=fixed_set)
    thetas = reader_metrics(right, expired)
    hits = {f"{method}_{metric}": 0 for method in ("orh", "baseline") for metric in METRICS}
    widths = dict.fromkeys(hits, 0.0)
    for study in range(N_STUDIES):
        readers = study_readers(right[study], expired[study], fixed_set=fixed_set)
        for metric in METRICS:
            orh = orh_group_interval(readers, metric=metric)
            pooled = pooled_mean(thetas[metric][study].tolist())
            baseline = (
                (pooled.interval.low, pooled.interval.high) if pooled.interval else (pooled.minimum, pooled.maximum)
            )
            for method, (low, high) in (("orh", (orh.low, orh.high)), ("baseline", baseline)):
                hits[f"{method}_{metric}"] += low <= truth <= high
                widths[f"{method}_{metric}"] += high - low
    return {
        **{f"coverage_{name}": round(count / N_STUDIES, 3) for name, count in hits.items()},
        **{f"mean_width_{name}": round(total / N_STUDIES, 3) for name, total in widths.items()},
    }


def main() -> dict:
    rng = np.random.default_rng(SEED)
    truth, (sampled, sampled_se) = true_mean(), sampled_mean(rng)
    print(
        f"true mean accuracy = balanced accuracy = {truth:.4f} (2 × 4,000,000 draws: {sampled:.4f} ± {sampled_se:.4f})"
    )
    print(f"{N_STUDIES} studies per design; baseline with 3 readers = the range min–max (no interval below 5)")
    print("design             readers  ORH acc  ORH bal  base acc  base bal   (mean width ORH / base, accuracy)")
    figures: dict = {"true_mean": round(truth, 4), "sampled_mean": round(sampled, 4), "designs": {}}
    for fixed_set in (False, True):
        for n_readers in READER_COUNTS:
            started = time.perf_counter()
            result = design_coverage(rng, n_readers=n_readers, fixed_set=fixed_set, truth=truth)
            design = f"{'fixed set' if fixed_set else 'random sets'}, {n_readers} readers"
            figures["designs"][design] = result
            print(
                f"{'fixed set' if fixed_set else 'random sets':<18} {n_readers:>7}  "
                f"{result['coverage_orh_accuracy']:>7.3f}  {result['coverage_orh_balanced_accuracy']:>7.3f}  "
                f"{result['coverage_baseline_accuracy']:>8.3f}  {result['coverage_baseline_balanced_accuracy']:>8.3f}"
                f"   ({result['mean_width_orh_accuracy']:.3f} / {result['mean_width_baseline_accuracy']:.3f};"
                f" {time.perf_counter() - started:.0f} s)"
            )
    return figures


if __name__ == "__main__":
    main()
