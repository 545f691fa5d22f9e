"""Scoring: the paper's Table 1 convention (DESIGN.md, "Scoring convention").

Positive class = real. TP = real called real, FN = real called synthetic, FP = synthetic called
real, TN = synthetic called synthetic. Main phase only; expired trials are kept out of TP..TN and
counted on their own.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from .models import Reader, Trial


@dataclass(frozen=True)
class ConfusionCounts:
    tp: int
    fn: int
    fp: int
    tn: int
    expired: int

    @property
    def called(self) -> int:
        return self.tp + self.fn + self.fp + self.tn

    @property
    def accuracy(self) -> float | None:
        """(TP + TN) / N on counts; None with no calls."""
        return (self.tp + self.tn) / self.called if self.called else None


def confusion_counts(outcomes: Iterable[tuple[str, str, bool]]) -> ConfusionCounts:
    """Counts from (truth, call, expired) triples, truth and call being "real" or "synthetic"."""
    tally = {"tp": 0, "fn": 0, "fp": 0, "tn": 0, "expired": 0}
    cell = {("real", "real"): "tp", ("real", "synthetic"): "fn", ("synthetic", "real"): "fp"}
    for truth, call, expired in outcomes:
        if expired:
            tally["expired"] += 1
        elif call:
            tally[cell.get((truth, call), "tn")] += 1
    return ConfusionCounts(**tally)


def reader_main_score(*, reader: Reader) -> ConfusionCounts:
    """A reader's main-phase counts (training calls are never scored)."""
    trials = Trial.objects.filter(session__reader=reader, phase=Trial.Phase.MAIN)
    return confusion_counts(trials.values_list("bank_image__image_class", "call", "expired"))
