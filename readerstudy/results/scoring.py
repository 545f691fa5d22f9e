"""Scoring a study's calls: the selectors that read trials and hand them to the pure statistics
(``readerstudy.results.statistics``), and the rows of the results table, ``calls.csv`` and the iMRMC file.

DESIGN.md, "Scoring convention": positive class = real; main phase only; expired trials are kept
out of TP..TN and counted on their own.
"""

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from readerstudy.reading.models import Reader, ReadingSession, Study, Trial
from readerstudy.reading.trials import trials_ended
from readerstudy.reading.viewing import VIEWING_COLUMNS, browser_name, session_viewing

from .groups import GroupInference, group_inferences
from .observer import machine_observer_latest
from .statistics import (
    REAL,
    SYNTHETIC,
    Agreement,
    ConfusionCounts,
    ReaderRoc,
    ReaderStatistics,
    confusion_counts,
    how_real_score,
    reader_agreement,
    reader_roc,
    reader_statistics,
)

NEURORADIOLOGISTS = "neuroradiologists"
OTHER_READERS = "other readers"


def reader_group(reader: Reader) -> str:
    """The paper's pooling: neuroradiologists against everybody else."""
    return NEURORADIOLOGISTS if reader.role == Reader.Role.NEURORADIOLOGIST else OTHER_READERS


def reader_label(reader: Reader) -> str:
    return f"{reader.user.get_username()} (simulated)" if reader.simulated else reader.user.get_username()


def study_ended_trials(*, study: Study, now: datetime | None = None):
    """Every ended trial of the study's sessions (``trials_ended``): what exports may show."""
    trials = Trial.objects.filter(session__reader__study=study)
    return trials_ended(trials, time_limit_s=study.time_limit_s, now=now or timezone.now())


def _main_trials(study: Study):
    return study_ended_trials(study=study).filter(phase=Trial.Phase.MAIN)


@dataclass(frozen=True)
class ReaderResult:
    reader: Reader
    statistics: ReaderStatistics
    roc: ReaderRoc | None


@dataclass(frozen=True)
class StudyResults:
    study: Study
    readers: list[ReaderResult]
    groups: list[GroupInference]
    agreement: Agreement | None


def study_results(*, study: Study, seed: int = 0) -> StudyResults:
    """Every reader's counts, rates, intervals and tests; the groups; agreement in fixed-set
    mode; ROC when confidence was collected. Readers who have not called anything are left out."""
    outcomes: dict[int, list[tuple]] = defaultdict(list)
    for reader_id, truth, call, expired, confidence, image_id, subject_id in _main_trials(study).values_list(
        "session__reader_id", "bank_image__image_class", "call", "expired", "confidence", "bank_image_id",
        "bank_image__subject_id",
    ):  # fmt: skip
        outcomes[reader_id].append((truth, call, expired or not call, confidence, image_id, subject_id))
    readers = Reader.objects.filter(pk__in=outcomes).select_related("user").order_by("pk")
    results = []
    for reader in readers:
        trials = outcomes[reader.pk]
        counts = confusion_counts((truth, call, expired) for truth, call, expired, *_ in trials)
        roc = (
            reader_roc((truth, call, confidence) for truth, call, _, confidence, *_ in trials)
            if study.ask_confidence
            else None
        )
        results.append(ReaderResult(reader, reader_statistics(counts, seed=seed), roc))
    groups = group_inferences(
        called={
            r.reader: [
                (truth, call, image, subject) for truth, call, _, _, image, subject in outcomes[r.reader.pk] if call
            ]
            for r in results
        },
        label=reader_label,
        group_of=reader_group,
    )
    agreement = None
    if study.fixed_set and len(results) >= 2:
        agreement = reader_agreement(
            {
                reader_label(r.reader): {image_id: call or None for _, call, _, _, image_id, _ in outcomes[r.reader.pk]}
                for r in results
            }
        )
    return StudyResults(study, results, groups, agreement)


TABLE_COLUMNS = [
    "reader", "role", "years_experience", "simulated", "n_readers", "n_real", "n_synthetic",
    "tp", "fn", "fp", "tn", "expired", "sensitivity", "specificity", "false_positive_rate", "false_negative_rate",
    "accuracy", "accuracy_ci_low", "accuracy_ci_high", "sensitivity_ci_low", "sensitivity_ci_high",
    "specificity_ci_low", "specificity_ci_high", "balanced_accuracy", "balanced_accuracy_ci_low",
    "balanced_accuracy_ci_high", "accuracy_binomial_p", "balanced_accuracy_permutation_p", "roc_auc", "note",
    "accuracy_se", "accuracy_df", "balanced_accuracy_se", "balanced_accuracy_df",
]  # fmt: skip


def _bounds(interval) -> tuple:
    return (interval.low, interval.high) if interval else (None, None)


def observer_row(result: dict) -> dict:
    """The machine observer's row of the table: its held-out test set, the readers' convention."""
    counts = ConfusionCounts(tp=result["tp"], fn=result["fn"], fp=result["fp"], tn=result["tn"])
    low, high = result["accuracy_interval"]
    row = dict.fromkeys(TABLE_COLUMNS) | counts.as_row()
    return row | {
        "reader": "machine observer",
        "role": "CNN (classifier two-sample test)",
        "n_readers": 1,
        "accuracy_ci_low": low,
        "accuracy_ci_high": high,
        "accuracy_binomial_p": result["p_value"],
        "note": f"held-out test set: {result['n_scored']} images scored, one per held-out subject or generator "
        f"group, of {result['n_test']} held out (trained on {result['n_train']}); "
        f"alpha {result['alpha']}: {'significant' if result['significant'] else 'not significant'}; "
        "accuracy interval Clopper-Pearson",
    }


def _group_note(group: GroupInference) -> str:
    if len(group.readers) < 2:
        return "One reader: the mean, no group interval."
    parts = []
    for name, interval in (("accuracy", group.accuracy), ("balanced accuracy", group.balanced_accuracy)):
        if interval is not None and interval.p_value is not None:
            parts.append(
                f"{name} t = {(interval.mean - 0.5) / interval.se:.2f}, df {interval.df:.1f}, p {interval.p_value:.3g}"
            )
    tests = f"; against 0.5: {'; '.join(parts)}" if parts else ""
    return (
        "Obuchowski-Rockette-Hillis 95% interval (random readers and cases; the cases readers share by the "
        f"jackknife, a subject's slices left out together){tests}."
    )


def group_row(group: GroupInference) -> dict:
    """A group's row: the readers' mean of each metric, its ORH interval, SE and df."""
    row = dict.fromkeys(TABLE_COLUMNS) | {
        "reader": f"group: {group.group}",
        "n_readers": len(group.readers),
        "note": _group_note(group),
    }
    for name, interval in (("accuracy", group.accuracy), ("balanced_accuracy", group.balanced_accuracy)):
        if interval is None:
            continue
        row |= {
            name: interval.mean,
            f"{name}_ci_low": interval.low,
            f"{name}_ci_high": interval.high,
            f"{name}_se": interval.se,
            f"{name}_df": None if interval.df is None or interval.df == float("inf") else interval.df,
        }
    return row


def results_table_rows(results: StudyResults, *, observer: dict | None = None) -> list[dict]:
    """``table.csv``: one row per reader (the paper's Table 1 columns and more), then a row per
    group (neuroradiologists, other readers), then the machine observer's when it has run."""
    rows = []
    for result in results.readers:
        stats, reader = result.statistics, result.reader
        counts = stats.counts
        row = dict.fromkeys(TABLE_COLUMNS) | counts.as_row()
        row |= {
            "reader": reader_label(reader),
            "role": reader.get_role_display(),
            "years_experience": reader.years_experience,
            "simulated": reader.simulated,
            "n_readers": 1,
            "note": "",
            "roc_auc": result.roc.auc if result.roc else None,
            "accuracy_binomial_p": stats.accuracy_test.p_value if stats.accuracy_test else None,
            "balanced_accuracy_permutation_p": stats.balanced_accuracy_test.p_value
            if stats.balanced_accuracy_test
            else None,
        }
        for name, interval in [
            ("accuracy", stats.accuracy_interval),
            ("sensitivity", stats.sensitivity_interval),
            ("specificity", stats.specificity_interval),
            ("balanced_accuracy", stats.balanced_accuracy_interval),
        ]:
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = _bounds(interval)
        rows.append({column: row[column] for column in TABLE_COLUMNS})
    rows += [group_row(group) for group in results.groups]
    if observer:
        rows.append({column: observer_row(observer)[column] for column in TABLE_COLUMNS})
    return rows


def study_table_rows(*, study: Study, results: StudyResults | None = None) -> list[dict]:
    """The table of a study as the page, the API and the command show it: readers, groups, and
    the latest machine observer that finished."""
    observer = machine_observer_latest(study=study)
    return results_table_rows(results or study_results(study=study), observer=observer.result if observer else None)


CALLS_COLUMNS = [
    "reader", "role", "case", "subject", "truth", "call", "confidence", "reason", "phase", "shown_at", "answered_at",
    "response_ms", "expired", "scale_factor", "full_screen", *VIEWING_COLUMNS,
]  # fmt: skip


def calls_rows(*, study: Study) -> list[dict]:
    """``calls.csv``: one row per ended trial of every session (answered or expired; a trial past
    its limit that nobody has marked yet counts as expired), training included (its phase says so).
    ``case`` is the bank image's id: stable, so the same image is the same case for every reader.
    ``subject`` is a real image's person (empty for synthetic ones), so MRMC tools can treat one
    person's slices as one case. ``scale_factor`` and ``full_screen`` say how the image was on
    screen at the call; the session's viewing conditions follow on every row."""
    trials = (
        study_ended_trials(study=study)
        .select_related("session__reader__user", "bank_image__subject")
        .order_by("session__reader_id", "position")
    )
    rows = []
    viewing = {}  # per session: read once
    for trial in trials:
        reader = trial.session.reader
        if trial.session_id not in viewing:
            viewing[trial.session_id] = session_viewing(trial.session)
        response_ms = (
            round((trial.answered_at - trial.shown_at).total_seconds() * 1000)
            if trial.answered_at and trial.shown_at
            else None
        )
        rows.append(
            {
                "reader": reader_label(reader),
                "role": reader.get_role_display(),
                "case": trial.bank_image_id,
                "subject": trial.bank_image.subject.label if trial.bank_image.subject_id else "",
                "truth": trial.bank_image.image_class,
                "call": trial.call,
                "confidence": trial.confidence,
                "reason": trial.reason,
                "phase": trial.phase,
                "shown_at": trial.shown_at.isoformat() if trial.shown_at else "",
                "answered_at": trial.answered_at.isoformat() if trial.answered_at else "",
                "response_ms": response_ms,
                "expired": not trial.call,
                "scale_factor": trial.scale_factor,
                "full_screen": trial.full_screen,
            }
            | viewing[trial.session_id]
        )
    return rows


@dataclass(frozen=True)
class SessionViewingRow:
    """One session's viewing conditions as the study page lists them."""

    reader: str
    screen: str
    window: str
    device_pixel_ratio: float | None
    browser: str
    display_check: str
    scale_factors: str  # "×8", or "×4–×8" when the window changed
    full_screen_calls: int
    reported_calls: int  # calls that came with their viewing (the reading page's)


def study_viewing_rows(*, study: Study) -> list[SessionViewingRow]:
    """Every session's screen, window, browser and display check, and how its images were shown."""
    sessions = (
        ReadingSession.objects.filter(reader__study=study)
        .select_related("reader__user")
        .annotate(
            k_low=Min("trials__scale_factor"),
            k_high=Max("trials__scale_factor"),
            full_screen_calls=Count("trials", filter=Q(trials__full_screen=True)),
            reported_calls=Count("trials", filter=Q(trials__scale_factor__isnull=False)),
        )
        .order_by("pk")
    )
    rows = []
    for session in sessions:
        viewing = session_viewing(session)
        k_range = "" if session.k_low is None else f"×{session.k_low}"
        if session.k_high is not None and session.k_high != session.k_low:
            k_range += f"–×{session.k_high}"
        rows.append(
            SessionViewingRow(
                reader=reader_label(session.reader),
                screen=viewing["screen_css_px"],
                window=viewing["window_css_px"],
                device_pixel_ratio=session.device_pixel_ratio,
                browser=browser_name(session.browser) if session.browser else "",
                display_check=session.get_display_check_display() if session.display_check else "",
                scale_factors=k_range,
                full_screen_calls=session.full_screen_calls,
                reported_calls=session.reported_calls,
            )
        )
    return rows


# iMRMC reads "NR:", "N0:", "N1:", "NM:" and "BEGIN DATA:" as the file's counts and data marker.
IMRMC_KEYWORDS = re.compile(r"(?i)\b(NR|N0|N1|NM|BEGIN\s+DATA)\s*:")


def imrmc_header_text(text: str) -> str:
    """Free text for the iMRMC header: one line, and never a count or marker iMRMC would read."""
    return IMRMC_KEYWORDS.sub(lambda match: f"{match.group(1)} -", " ".join(text.split()))


def imrmc_text(*, study: Study) -> str:
    """The study in iMRMC's input format: a free-text header, NR/N0/N1/NM, then BEGIN DATA:,
    one truth row per case (``-1,case,0,truth``; iMRMC reads modality 0 on truth rows, and truth
    1 = real, the positive class) and one row per reader and case (``reader,case,modality,score``;
    score 1 = called real, 0 = called synthetic, or with confidence the 1–10 "how real" score).
    Main phase only; expired trials have no score and are left out; cases are numbered from 1."""
    modality = 1  # one modality: the generator under test
    trials = list(
        _main_trials(study)
        .exclude(call="")
        .filter(expired=False)
        .values_list("session__reader_id", "bank_image_id", "bank_image__image_class", "call", "confidence")
        .order_by("session__reader_id", "bank_image_id")
    )
    case_number = {image_id: n for n, image_id in enumerate(sorted({t[1] for t in trials}), start=1)}
    truth = {image_id: image_class for _, image_id, image_class, _, _ in trials}
    reader_number = {reader_id: n for n, reader_id in enumerate(sorted({t[0] for t in trials}), start=1)}
    lines = [
        f"SynthRead study {imrmc_header_text(study.name)!r}: real (1) or synthetic (0); main phase, "
        "expired trials left out.",
        "Scores: 1 = called real, 0 = called synthetic"
        + ("; with confidence, 1-10 from certainly synthetic to certainly real." if study.ask_confidence else "."),
        "",
        f"NR: {len(reader_number)}",
        f"N0: {sum(1 for c in truth.values() if c == SYNTHETIC)}",
        f"N1: {sum(1 for c in truth.values() if c == REAL)}",
        "NM: 1",
        "",
        "BEGIN DATA:",
    ]
    lines += [f"-1,{case_number[i]},0,{1 if truth[i] == REAL else 0}" for i in sorted(case_number)]
    for reader_id, image_id, _, call, confidence in trials:
        binary = 1 if call == REAL else 0
        score = how_real_score(call, confidence) if study.ask_confidence and confidence else binary
        lines.append(f"{reader_number[reader_id]},{case_number[image_id]},{modality},{score}")
    return "\n".join(lines) + "\n"
