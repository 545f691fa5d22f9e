"""The server's clock over trials (readerstudy/reading/trials.py): the clock starts at the first serve,
reloads do not restart it, late calls expire the trial, calls are recorded exactly once."""

from datetime import timedelta

import pytest
from django.utils import timezone

from readerstudy.reading.models import Reader, Study
from readerstudy.reading.sessions import session_build
from readerstudy.reading.trials import CallInvalid, CallRefused, TrialNotFound, call_record, trial_current, trial_serve
from tests.factories import ReadingSessionFactory, StudyFactory, UserFactory

pytestmark = pytest.mark.django_db
T0 = timezone.now()


def at(seconds: float):
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def session():
    return ReadingSessionFactory(reader__study=StudyFactory(name="timed", pools=(3, 1)), seed=5)


def test_the_clock_starts_at_the_first_serve_and_a_reload_does_not_restart_it(session):
    first = trial_current(session=session, now=at(0))
    assert first.position == 0 and first.shown_at is None
    served = trial_serve(session=session, token=first.token, now=at(1))
    reloaded = trial_serve(session=session, token=first.token, now=at(5))
    assert served.shown_at == reloaded.shown_at == at(1)
    assert served.bank_image.__class__.objects.get(pk=served.bank_image_id).first_shown_at == at(1)


def test_a_call_within_the_limit_and_grace_is_recorded_once(session):
    trial = trial_serve(session=session, token=trial_current(session=session, now=at(0)).token, now=at(0))
    outcome = call_record(session=session, token=trial.token, call="real", now=at(10.9))
    assert not outcome.replayed and outcome.trial.call == "real" and outcome.trial.answered_at == at(10.9)
    assert call_record(session=session, token=trial.token, call="real", now=at(12)).replayed
    with pytest.raises(CallRefused, match="cannot be changed"):
        call_record(session=session, token=trial.token, call="synthetic", now=at(12))
    assert trial_current(session=session, now=at(12)).position == 1


def test_a_late_call_is_refused_and_the_trial_recorded_expired(session):
    trial = trial_serve(session=session, token=trial_current(session=session, now=at(0)).token, now=at(0))
    with pytest.raises(CallRefused, match="after the time limit"):
        call_record(session=session, token=trial.token, call="synthetic", now=at(11.2))
    trial.refresh_from_db()
    assert trial.expired and trial.call == ""
    with pytest.raises(TrialNotFound):  # the token is dead now
        trial_serve(session=session, token=trial.token, now=at(12))


def test_a_closed_tab_resumes_at_the_next_trial(session):
    first = trial_serve(session=session, token=trial_current(session=session, now=at(0)).token, now=at(0))
    later = trial_current(session=session, now=at(3600))  # the reader comes back an hour later
    first.refresh_from_db()
    assert first.expired and later.position == 1 and later.shown_at is None


def test_forged_other_and_future_tokens_are_not_found(session):
    other = session_build(reader=Reader.objects.create(user=UserFactory(), study=session.reader.study), seed=6)
    future = session.trials.get(position=2)
    for token in ("forged", other.trials.first().token, future.token):
        with pytest.raises(TrialNotFound):
            trial_serve(session=session, token=token, now=at(0))
    with pytest.raises(TrialNotFound):
        call_record(session=session, token=other.trials.first().token, call="real", now=at(0))


def test_calls_are_checked_before_anything_is_recorded(session):
    trial = trial_current(session=session, now=at(0))
    with pytest.raises(CallInvalid):
        call_record(session=session, token=trial.token, call="unknown", now=at(0))
    with pytest.raises(CallInvalid):
        call_record(session=session, token=trial.token, call="real", confidence=6, now=at(0))
    with pytest.raises(CallRefused, match="not been shown"):
        call_record(session=session, token=trial.token, call="real", now=at(0))
    later = session.trials.get(position=1)
    with pytest.raises(CallRefused):
        call_record(session=session, token=later.token, call="real", now=at(0))
    trial.refresh_from_db()
    assert trial.call == "" and not trial.expired


@pytest.mark.parametrize(
    ("asks", "sent", "refusal"),
    [
        ({"ask_confidence": True}, {}, "asks for a confidence"),
        ({"ask_confidence": True}, {"confidence": 6}, "runs from 1 to 5"),
        ({}, {"confidence": 4}, "does not ask for a confidence"),
        ({}, {"reason": "the gyri"}, "does not ask for a reason"),
        ({"ask_confidence": True}, {"confidence": 3, "reason": "edges"}, "does not ask for a reason"),
    ],
)
def test_a_call_carries_confidence_exactly_when_asked_and_a_reason_only_when_offered(asks, sent, refusal):
    session = ReadingSessionFactory(reader__study=StudyFactory(name="asks", pools=(3, 1), **asks), seed=5)
    trial = trial_serve(session=session, token=trial_current(session=session, now=at(0)).token, now=at(0))
    with pytest.raises(CallInvalid, match=refusal):
        call_record(session=session, token=trial.token, call="real", now=at(1), **sent)
    trial.refresh_from_db()
    assert trial.call == "" and trial.confidence is None and trial.reason == ""


def test_a_call_with_what_the_study_asks_is_recorded():
    study = StudyFactory(name="asks all", pools=(3, 1), ask_confidence=True, ask_reason=True)
    session = ReadingSessionFactory(reader__study=study, seed=5)
    trial = trial_serve(session=session, token=trial_current(session=session, now=at(0)).token, now=at(0))
    outcome = call_record(session=session, token=trial.token, call="real", confidence=3, reason=" edges ", now=at(1))
    assert (outcome.trial.confidence, outcome.trial.reason) == (3, "edges")


def test_an_unlimited_study_never_expires(session):
    Study.objects.filter(pk=session.reader.study_id).update(time_limit_s=None)
    session.reader.study.refresh_from_db()
    trial = trial_serve(session=session, token=trial_current(session=session, now=at(0)).token, now=at(0))
    assert call_record(session=session, token=trial.token, call="real", now=at(10_000)).trial.call == "real"
