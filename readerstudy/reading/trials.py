"""The server's clock over trials: serving an image starts it, one call or expiry ends it.

DESIGN.md, "Trials and the timer": a trial's clock starts when its image is first served; a
reload within the window serves the same image without restarting the clock; a call arriving
within the time limit plus a grace of 1 s is recorded, later the trial is recorded expired (also
lazily, on the reader's next request); after the window the token is dead. Calls are idempotent
per trial: a replay returns the stored call, a different second call is refused. This module is
the ONE place that decides whether a call is allowed now; pages and the API both call it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from generator.models import BankImage
from readerstudy.core.errors import ApplicationError

from .models import ReadingSession, Study, Trial

GRACE_S = 1.0
CONFIDENCE_RANGE = range(1, 6)
SCALE_FACTOR_RANGE = range(1, 65)  # k: an 8K screen shows a 128² image at 33; more is no screen
LATE_MESSAGE = "Time ran out: the call came after the time limit, and the image was recorded as expired."


class TrialNotFound(Exception):
    """No such trial for this reader now (forged, dead, another reader's): a 404 with no hint."""


class CallInvalid(ApplicationError):
    """A malformed call (400)."""


class CallRefused(Exception):
    """A well-formed call that cannot be recorded now; the message says why (409)."""


@dataclass(frozen=True)
class CallOutcome:
    trial: Trial
    replayed: bool


class TrialLike(Protocol):
    """What the clock needs of a trial: a stored ``Trial`` and a dry run's trial alike."""

    phase: str
    position: int
    shown_at: datetime | None
    call: str
    expired: bool


def _deadline(trial: TrialLike, time_limit_s: float | None) -> datetime | None:
    if time_limit_s is None or trial.shown_at is None:
        return None
    return trial.shown_at + timedelta(seconds=time_limit_s + GRACE_S)


def trial_ended(trial: TrialLike) -> bool:
    return bool(trial.call) or trial.expired


def trials_ended(trials: QuerySet[Trial], *, time_limit_s: float | None, now: datetime) -> QuerySet[Trial]:
    """The trials whose outcome is settled: answered, expired, or past their limit (and grace)
    and not yet marked (the reader closed the tab). Exports hold only these: an unserved or
    running trial's truth would tell a reader what is coming. Among them, no call means expired."""
    ended = ~Q(call="") | Q(expired=True)
    if time_limit_s is not None:
        ended |= Q(shown_at__lt=now - timedelta(seconds=time_limit_s + GRACE_S))
    return trials.filter(ended)


def trial_is_late(trial: TrialLike, time_limit_s: float | None, now: datetime) -> bool:
    deadline = _deadline(trial, time_limit_s)
    return deadline is not None and now > deadline and not trial_ended(trial)


def trial_remaining_s(trial: TrialLike, time_limit_s: float | None, now: datetime) -> float | None:
    """Seconds left on a trial's clock (all of them if its image was never served); None if
    the study has no limit. A reload shows what is left, not a fresh countdown."""
    if time_limit_s is None:
        return None
    if trial.shown_at is None:
        return time_limit_s
    return max(0.0, time_limit_s - (now - trial.shown_at).total_seconds())


def trial_place(*, trial: TrialLike, training_total: int, main_total: int) -> tuple[int, int]:
    """A trial's 1-based place within its phase and the phase's size. Positions run from 0
    through the whole session, training first, so no other trial need be read."""
    if trial.phase == Trial.Phase.TRAINING:
        return trial.position + 1, training_total
    return trial.position - training_total + 1, main_total


def call_validate(
    *, study: Study, call: str, confidence: int | None, reason: str = "", scale_factor: int | None = None
) -> None:
    """THE rule for what a call may carry, for readers and dry runs alike: confidence exactly when
    the study asks for it (a call without it would mix 0/1 with 1–10 scores in the MRMC export),
    a reason only when it offers one, the image's scale factor as a whole number when reported."""
    if call not in Trial.Call.values:
        raise CallInvalid("A call is 'real' or 'synthetic'.")
    if study.ask_confidence and confidence is None:
        raise CallInvalid("This study asks for a confidence (1 to 5) with every call.")
    if not study.ask_confidence and confidence is not None:
        raise CallInvalid("This study does not ask for a confidence; send the call alone.")
    if confidence is not None and confidence not in CONFIDENCE_RANGE:
        raise CallInvalid("Confidence runs from 1 to 5.")
    if not study.ask_reason and reason.strip():
        raise CallInvalid("This study does not ask for a reason; send the call without one.")
    if scale_factor is not None and scale_factor not in SCALE_FACTOR_RANGE:
        raise CallInvalid(f"A scale factor is a whole number from 1 to {SCALE_FACTOR_RANGE[-1]}.")


def call_decide(
    *, trial: TrialLike, call: str, is_current: bool, time_limit_s: float | None, now: datetime
) -> Literal["replay", "record", "late"]:
    """THE rule for whether a call is allowed now; CallRefused says why not."""
    if trial.call:
        if trial.call == call:
            return "replay"
        raise CallRefused(f"This image was already called '{trial.call}'; a call cannot be changed.")
    if trial.expired:
        raise CallRefused(LATE_MESSAGE)
    if trial.shown_at is None:
        raise CallRefused("This image has not been shown yet.")
    if not is_current:
        raise CallRefused("This is not your current image.")
    return "late" if trial_is_late(trial, time_limit_s, now) else "record"


def _expire_if_late(trial: Trial, time_limit_s: float | None, now: datetime) -> bool:
    if trial_is_late(trial, time_limit_s, now):
        trial.expired = True
        trial.save(update_fields=["expired"])
        return True
    return False


def _open_trials(*related: str, **which) -> QuerySet[Trial]:
    """Open trials (no call, not expired) in reading order, each locked when read, fetched with
    its image (its file, its class) and any ``related`` rows in the same query."""
    return (
        Trial.objects.select_for_update(of=("self",))
        .select_related("bank_image", *related)
        .filter(call="", expired=False, **which)
        .order_by("position")
    )


def _first_open_trial(
    open_trials: QuerySet[Trial], now: datetime, time_limit_s: Callable[[Trial], float | None]
) -> Trial | None:
    """The first open trial, expiring on the way any whose time ran out (a closed tab).
    One row at a time: usually the first open trial is the current one. Call in a transaction."""
    while (trial := open_trials.first()) is not None:
        if not _expire_if_late(trial, time_limit_s(trial), now):
            return trial
    return None


def _session_current(session: ReadingSession, now: datetime) -> Trial | None:
    time_limit_s = session.reader.study.time_limit_s
    return _first_open_trial(_open_trials(session=session), now, lambda _: time_limit_s)


def trial_current(*, session: ReadingSession, now: datetime | None = None) -> Trial | None:
    """The reader's current trial, expiring on the way any whose time ran out (a closed tab)."""
    now = now or timezone.now()
    with transaction.atomic():
        current = _session_current(session, now)
        if current is None and session.finished_at is None:
            session.finished_at = now
            session.save(update_fields=["finished_at"])
    return current


def _serve(current: Trial | None, token: str, now: datetime) -> bool:
    """Start the clock of the current trial if the token is its own; call in the transaction
    that found it. False for any other token: the caller raises ``TrialNotFound`` after the
    commit, so the expiries found on the way are recorded."""
    if current is None or current.token != token:
        return False
    if current.shown_at is None:
        current.shown_at = now
        current.save(update_fields=["shown_at"])
        if current.bank_image.first_shown_at is None:
            # From now on the image is evidence: it can be excluded, never changed or deleted.
            BankImage.objects.filter(pk=current.bank_image_id, first_shown_at__isnull=True).update(first_shown_at=now)
    return True


def _serve_current(
    open_trials: QuerySet[Trial], time_limit_s: Callable[[Trial], float | None], token: str, now: datetime
) -> Trial:
    with transaction.atomic():
        current = _first_open_trial(open_trials, now, time_limit_s)
        served = _serve(current, token, now)
    if not served:
        raise TrialNotFound
    return current


def trial_serve(*, session: ReadingSession, token: str, now: datetime | None = None) -> Trial:
    """The trial behind a token, if it is this reader's current one; its clock starts now if the
    image was never served, and a reload within the window changes nothing."""
    time_limit_s = session.reader.study.time_limit_s
    return _serve_current(_open_trials(session=session), lambda _: time_limit_s, token, now or timezone.now())


def trial_serve_for_user(*, user, token: str, now: datetime | None = None) -> Trial:
    """``trial_serve`` for the image request, which knows the user and the token only: the
    session is the one holding the token, if it is the user's (one query in the usual case)."""
    open_trials = _open_trials("session__reader__study", session__reader__user=user, session__trials__token=token)
    return _serve_current(
        open_trials, lambda trial: trial.session.reader.study.time_limit_s, token, now or timezone.now()
    )


def call_record(
    *,
    session: ReadingSession,
    token: str,
    call: str,
    confidence: int | None = None,
    reason: str = "",
    scale_factor: int | None = None,
    full_screen: bool | None = None,
    now: datetime | None = None,
) -> CallOutcome:
    """Record a reader's call on a trial, exactly once, if it is allowed now, with how its image
    was on screen (``scale_factor`` k, ``full_screen``) when the page reports it."""
    now = now or timezone.now()
    call_validate(
        study=session.reader.study, call=call, confidence=confidence, reason=reason, scale_factor=scale_factor
    )
    with transaction.atomic():
        # The current trial, locked: two calls at once on one session take turns.
        current = _session_current(session, now)
        if current is not None and current.token == token:
            trial = current
        else:  # a replay, or a refusal: the token's own trial says which
            trial = session.trials.select_related("bank_image").filter(token=token).first()
            if trial is None:
                raise TrialNotFound
        try:
            decision = call_decide(
                trial=trial,
                call=call,
                is_current=trial is current,
                time_limit_s=session.reader.study.time_limit_s,
                now=now,
            )
        except CallRefused as error:
            refusal = error  # raised after the commit: expiries found on the way are recorded
        else:
            refusal = None
            if decision == "replay":
                return CallOutcome(trial, replayed=True)
            if decision == "late":
                trial.expired = True
                trial.save(update_fields=["expired"])
                refusal = CallRefused(LATE_MESSAGE)
            else:
                trial.call, trial.confidence, trial.reason, trial.answered_at = call, confidence, reason.strip(), now
                trial.scale_factor, trial.full_screen = scale_factor, full_screen
                trial.save(update_fields=["call", "confidence", "reason", "answered_at", "scale_factor", "full_screen"])
    if refusal is not None:
        raise refusal
    return CallOutcome(trial, replayed=False)
