"""Dry runs: an admin reads a study exactly as a reader would, and nothing is recorded.

The dry run's trials live in the admin's web session only (never in the evidence tables), and
its images are served without marking them as shown, so no bank image becomes evidence. The
clock and the call rules are the real ones (``trials.call_decide``), so what the admin sees is
what readers will get: the same countdown, the same late-call refusal, the same feedback.
"""

import secrets
from dataclasses import asdict, dataclass
from datetime import datetime

from django.contrib.sessions.backends.base import SessionBase
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .models import Study, Trial
from .sessions import study_session_plan
from .trials import LATE_MESSAGE, CallRefused, TrialNotFound, call_decide, call_validate, trial_is_late
from .viewing import ViewingConditions

STORE_KEY = "synthread_dry_runs"
CHECKED_KEY = "synthread_dry_run_display_checks"  # study ids whose current dry run had its display check


@dataclass
class DryTrial:
    token: str
    bank_image_id: int
    phase: str
    position: int
    shown_at: datetime | None = None
    call: str = ""
    expired: bool = False

    def to_json(self) -> dict:
        return asdict(self) | {"shown_at": self.shown_at.isoformat() if self.shown_at else None}

    @classmethod
    def from_json(cls, data: dict) -> "DryTrial":
        return cls(**data | {"shown_at": parse_datetime(data["shown_at"]) if data["shown_at"] else None})


def _load(store: SessionBase, study: Study) -> list[DryTrial]:
    return [DryTrial.from_json(item) for item in store.get(STORE_KEY, {}).get(str(study.pk), [])]


def _save(store: SessionBase, study: Study, trials: list[DryTrial]) -> None:
    runs = store.get(STORE_KEY, {})
    runs[str(study.pk)] = [trial.to_json() for trial in trials]
    store[STORE_KEY] = runs


def dry_run_start(*, store: SessionBase, study: Study) -> list[DryTrial]:
    """A fresh dry run of the study (any earlier one of this admin is dropped)."""
    plan = study_session_plan(study=study, seed=secrets.randbits(48))
    phases = [(Trial.Phase.TRAINING, i) for i in plan.training_order] + [(Trial.Phase.MAIN, i) for i in plan.main_order]
    trials = [
        DryTrial(token=secrets.token_urlsafe(32), bank_image_id=image_id, phase=phase, position=position)
        for position, (phase, image_id) in enumerate(phases)
    ]
    _save(store, study, trials)
    store[CHECKED_KEY] = [pk for pk in store.get(CHECKED_KEY, []) if pk != study.pk]  # a fresh run checks again
    return trials


def dry_run_display_check_needed(*, store: SessionBase, study: Study) -> bool:
    return study.pk not in store.get(CHECKED_KEY, [])


def dry_run_display_checked(*, store: SessionBase, study: Study, conditions: ViewingConditions) -> None:
    """The admin answered the display check: checked as a reader's, remembered for this dry run,
    recorded nowhere."""
    conditions.validate()
    if dry_run_display_check_needed(store=store, study=study):
        store[CHECKED_KEY] = [*store.get(CHECKED_KEY, []), study.pk]


def dry_run_trials(*, store: SessionBase, study: Study) -> list[DryTrial]:
    return _load(store, study)


def dry_run_current(*, store: SessionBase, study: Study, now: datetime | None = None) -> DryTrial | None:
    """The current trial of the dry run, expiring on the way any whose time ran out."""
    now = now or timezone.now()
    trials = _load(store, study)
    current = None
    for trial in trials:
        if trial.call or trial.expired:
            continue
        if trial_is_late(trial, study.time_limit_s, now):
            trial.expired = True
            continue
        current = trial
        break
    _save(store, study, trials)
    return current


def dry_run_serve(*, store: SessionBase, study: Study, token: str, now: datetime | None = None) -> DryTrial:
    now = now or timezone.now()
    current = dry_run_current(store=store, study=study, now=now)
    if current is None or current.token != token:
        raise TrialNotFound
    if current.shown_at is None:
        trials = _load(store, study)
        trials[current.position].shown_at = current.shown_at = now
        _save(store, study, trials)
    return current


def dry_run_call(
    *,
    store: SessionBase,
    study: Study,
    token: str,
    call: str,
    confidence: int | None = None,
    reason: str = "",
    scale_factor: int | None = None,
    now: datetime | None = None,
) -> tuple[DryTrial, bool]:
    """Decide a dry-run call by the readers' rules; returns the trial and whether the call was
    a replay. A late call expires the trial and is refused (CallRefused), as for a reader."""
    now = now or timezone.now()
    call_validate(study=study, call=call, confidence=confidence, reason=reason, scale_factor=scale_factor)
    trials = _load(store, study)
    trial = next((t for t in trials if t.token == token), None)
    if trial is None:
        raise TrialNotFound
    earlier_open = any(not (t.call or t.expired) for t in trials[: trial.position])
    decision = call_decide(
        trial=trial, call=call, is_current=not earlier_open, time_limit_s=study.time_limit_s, now=now
    )
    if decision == "late":
        trial.expired = True
    elif decision == "record":
        trial.call = call
    _save(store, study, trials)
    if decision == "late":
        raise CallRefused(LATE_MESSAGE)
    return trial, decision == "replay"
