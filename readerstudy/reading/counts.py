"""The scoring convention as counts, pure (no Django, no database): what a reader's calls add up
to. The results app builds its statistics on these; the reading app shows a reader their own.

DESIGN.md, "Scoring convention": positive class = real. TP = real called real, FN = real called
synthetic, FP = synthetic called real, TN = synthetic called synthetic. Expired trials are kept
out of TP..TN and counted on their own. An undefined rate is ``None``, never NaN.
"""

from collections.abc import Iterable
from dataclasses import dataclass

REAL, SYNTHETIC = "real", "synthetic"
CLASSES = (REAL, SYNTHETIC)
# Columns of ConfusionCounts.as_row(), in the order a results table shows them.
COUNT_COLUMNS = ("tp", "fn", "fp", "tn", "expired", "n_real", "n_synthetic", "called")
RATE_COLUMNS = (
    "accuracy",
    "balanced_accuracy",
    "sensitivity",
    "specificity",
    "false_positive_rate",
    "false_negative_rate",
)
ROW_COLUMNS = COUNT_COLUMNS + RATE_COLUMNS


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


@dataclass(frozen=True)
class ConfusionCounts:
    """One reader's main-phase counts, and the rates that follow from them."""

    tp: int
    fn: int
    fp: int
    tn: int
    expired: int = 0

    @property
    def n_real(self) -> int:
        return self.tp + self.fn

    @property
    def n_synthetic(self) -> int:
        return self.fp + self.tn

    @property
    def called(self) -> int:
        return self.n_real + self.n_synthetic

    @property
    def accuracy(self) -> float | None:
        """(TP + TN) / N on counts; None with no calls."""
        return _ratio(self.tp + self.tn, self.called)

    @property
    def sensitivity(self) -> float | None:
        """TPR = TP / (TP + FN): share of real images called real; None with no real trials."""
        return _ratio(self.tp, self.n_real)

    @property
    def specificity(self) -> float | None:
        """TNR = TN / (TN + FP): share of synthetic images called synthetic; None without them."""
        return _ratio(self.tn, self.n_synthetic)

    @property
    def false_positive_rate(self) -> float | None:
        """FPR = FP / (FP + TN): synthetic images passed off as real."""
        return _ratio(self.fp, self.n_synthetic)

    @property
    def false_negative_rate(self) -> float | None:
        """FNR = FN / (TP + FN): real images taken for synthetic."""
        return _ratio(self.fn, self.n_real)

    @property
    def balanced_accuracy(self) -> float | None:
        """(TPR + TNR) / 2, the paper's Table 1 accuracy; None unless both classes were called.

        Unlike accuracy on counts it is 0.5 for a reader who gives every image the same call,
        whatever the mix of real and synthetic images.
        """
        if self.sensitivity is None or self.specificity is None:
            return None
        return (self.sensitivity + self.specificity) / 2

    def as_row(self) -> dict[str, int | float | None]:
        """Counts and rates under their own names, for a results table or CSV."""
        return {name: getattr(self, name) for name in ROW_COLUMNS}


def confusion_counts(outcomes: Iterable[tuple[str, str | None, bool]]) -> ConfusionCounts:
    """Counts from (truth, call, expired) triples; a trial neither expired nor called is skipped."""
    cells = {(REAL, REAL): "tp", (REAL, SYNTHETIC): "fn", (SYNTHETIC, REAL): "fp", (SYNTHETIC, SYNTHETIC): "tn"}
    tally = dict.fromkeys(("tp", "fn", "fp", "tn", "expired"), 0)
    for truth, call, expired in outcomes:
        if expired:
            tally["expired"] += 1
        elif call:
            if (truth, call) not in cells:
                raise ValueError(f"truth and call must be 'real' or 'synthetic', got {truth!r}, {call!r}")
            tally[cells[truth, call]] += 1
    return ConfusionCounts(**tally)
