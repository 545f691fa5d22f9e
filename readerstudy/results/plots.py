"""Pictures of a study's results, as a researcher would put them in a paper: accuracy per reader
with interval bars and the chance line, a confusion matrix per reader, ROC curves."""

import io

from .scoring import StudyResults, reader_label


def _pyplot():
    """matplotlib, loaded when a picture is first drawn (web processes that draw none skip it)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    import matplotlib.pyplot as plt

    return plt


def _png(figure) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(figure)
    return out.getvalue()


def accuracy_plot(results: StudyResults) -> bytes:
    """Balanced accuracy (bootstrap 95 % interval) and accuracy (Wilson 95 %) per reader."""
    readers = results.readers
    figure, axes = _pyplot().subplots(figsize=(max(4.5, 1.1 * len(readers) + 2), 3.6))
    for offset, (name, colour, interval_of) in enumerate(
        [
            ("balanced accuracy", "#2b6cb0", lambda s: s.balanced_accuracy_interval),
            ("accuracy", "#9aa5b1", lambda s: s.accuracy_interval),
        ]
    ):
        xs, values, lows, highs = [], [], [], []
        for index, result in enumerate(readers):
            stats = result.statistics
            value = getattr(stats.counts, name.replace(" ", "_"))
            if value is None:
                continue
            interval = interval_of(stats)
            xs.append(index + (offset - 0.5) * 0.25)
            values.append(value)
            # A percentile interval may sit a hair off its point estimate: bars never go negative.
            lows.append(max(0.0, value - (interval.low if interval else value)))
            highs.append(max(0.0, (interval.high if interval else value) - value))
        axes.errorbar(xs, values, yerr=[lows, highs], fmt="o", color=colour, capsize=4, label=name)
    axes.axhline(0.5, color="#b42318", linestyle="--", linewidth=1, label="chance")
    axes.set_xticks(range(len(readers)), [reader_label(r.reader) for r in readers], rotation=30, ha="right")
    axes.set_ylim(0, 1.02)
    axes.set_ylabel("proportion correct")
    axes.set_title("Per reader, with 95 % intervals")
    axes.legend(loc="lower right", fontsize=8)
    return _png(figure)


def confusion_plot(results: StudyResults) -> bytes:
    """One 2×2 matrix per reader: rows truth (real, synthetic), columns call."""
    readers = results.readers
    columns = min(len(readers), 5) or 1
    rows = (len(readers) + columns - 1) // columns or 1
    figure, grid = _pyplot().subplots(rows, columns, figsize=(2.4 * columns, 2.4 * rows), squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    for axes, result in zip(grid.flat, readers, strict=False):
        counts = result.statistics.counts
        matrix = [[counts.tp, counts.fn], [counts.fp, counts.tn]]
        axes.axis("on")
        axes.imshow(matrix, cmap="Blues", vmin=0)
        for i in range(2):
            for j in range(2):
                axes.text(j, i, f"{['TP', 'FN', 'FP', 'TN'][2 * i + j]}\n{matrix[i][j]}", ha="center", va="center")
        axes.set_xticks([0, 1], ["called real", "called synth."], fontsize=7)
        axes.set_yticks([0, 1], ["real", "synthetic"], fontsize=7)
        axes.set_title(reader_label(result.reader), fontsize=9)
    return _png(figure)


def roc_plot(results: StudyResults) -> bytes:
    """ROC curves from the 10-step "how real" score (call folded with confidence)."""
    figure, axes = _pyplot().subplots(figsize=(4.2, 4.2))
    for result in results.readers:
        if result.roc and result.roc.points:
            xs = [p.false_positive_rate for p in result.roc.points]
            ys = [p.true_positive_rate for p in result.roc.points]
            axes.plot(xs, ys, marker=".", label=f"{reader_label(result.reader)} (AUC {result.roc.auc:.2f})")
    axes.plot([0, 1], [0, 1], color="#b42318", linestyle="--", linewidth=1, label="chance")
    axes.set_xlabel("false positive rate (synthetic called real)")
    axes.set_ylabel("true positive rate (real called real)")
    axes.legend(loc="lower right", fontsize=7)
    return _png(figure)


PLOTS = {"accuracy": accuracy_plot, "confusion": confusion_plot, "roc": roc_plot}
