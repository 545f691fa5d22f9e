"""Readers of a study: adding them, inviting them, their consent and their progress.

An invitation is Django's password-reset link (a signed, expiring token that dies once the
password is set): the reader opens it, sets a password, is signed in and lands on the study.
"""

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from readerstudy.core.errors import ApplicationError
from readerstudy.core.roles import Role, user_role, user_set_role

from .counts import ConfusionCounts, confusion_counts
from .models import Reader, ReadingSession, Study, Trial


class ReaderError(ApplicationError):
    """A reader that cannot be added as asked; the message says why."""


@transaction.atomic
def reader_add(
    *,
    study: Study,
    username: str,
    email: str = "",
    role: str = Reader.Role.OTHER,
    years_experience: int = 0,
    simulated: bool = False,
) -> Reader:
    """Add a reader to a study, creating their account (without a usable password: the
    invitation sets it) when it does not exist yet."""
    if role not in Reader.Role.values:
        raise ReaderError(f"Unknown reader role {role!r}; choose one of {', '.join(Reader.Role.values)}.")
    user_model = get_user_model()
    user = user_model.objects.filter(username=username).first()
    if user is None:
        user = user_model.objects.create_user(username=username, email=email)
        user_set_role(user=user, role=Role.READER)
    elif refusal := reader_user_refusal(user):
        raise ReaderError(refusal)
    elif user_role(user) is not Role.READER:
        raise ReaderError(f"{username} is one of the {user_role(user).value}, not a reader.")
    elif email and not user.email:
        user.email = email
        user.save(update_fields=["email"])
    if Reader.objects.filter(user=user, study=study).exists():
        raise ReaderError(f"{username} already reads {study}.")
    return Reader.objects.create(
        user=user, study=study, role=role, years_experience=years_experience, simulated=simulated
    )


def reader_user_refusal(user) -> str | None:
    """Why this user may not read a study, or None: THE rule for the service, the admin's forms
    (``Reader.clean``) and a later change of the user's role (``signals``). Admins and researchers
    see results, exports and the answers of every image: a call of theirs is no blinded call."""
    role = user_role(user)
    if role in (Role.ADMIN, Role.RESEARCHER):
        return (
            f"{user.get_username()} is one of the {role.value}, who see results and answers: "
            "they cannot read a study. Give the reader an account of their own."
        )
    return None


def open_readings(user) -> list[Reader]:
    """The user's readings of studies that are open (a reader there is taking part in a blinded study)."""
    return list(Reader.objects.filter(user=user, study__state=Study.State.OPEN).select_related("study"))


def invitation_path(*, reader: Reader) -> str:
    """The invitation link's path: set a password, then land on the study."""
    user = reader.user
    return reverse(
        "password_reset_confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )


def invitation_url(*, reader: Reader, base_url: str | None = None) -> str:
    return (base_url or settings.SITE_URL).rstrip("/") + invitation_path(reader=reader)


def invitation_send(*, reader: Reader, base_url: str | None = None) -> str:
    """E-mail the invitation through Django's e-mail backend; returns the link sent."""
    if not reader.user.email:
        raise ReaderError(f"{reader.user} has no e-mail address; copy the invitation link instead.")
    url = invitation_url(reader=reader, base_url=base_url)
    send_mail(
        subject=f"Invitation to read: {reader.study}",
        message=(
            f'You are invited to read in the study "{reader.study}" on SynthRead.\n\n'
            f"Open this link to set your password and start:\n{url}\n\n"
            "The link works once and expires; ask the study's coordinator for a new one if needed.\n"
        ),
        from_email=None,
        recipient_list=[reader.user.email],
    )
    reader.invited_at = timezone.now()
    reader.save(update_fields=["invited_at"])
    return url


def consent_accept(*, reader: Reader) -> None:
    if reader.consent_accepted_at is None:
        reader.consent_accepted_at = timezone.now()
        reader.save(update_fields=["consent_accepted_at"])


def consent_needed(*, reader: Reader) -> bool:
    return bool(reader.study.consent_text.strip()) and reader.consent_accepted_at is None


@dataclass(frozen=True)
class ReaderProgress:
    status: str  # "not started", "reading", "finished"
    done: int
    expired: int
    total: int

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


def reader_progress(*, reader: Reader) -> ReaderProgress:
    """How far a reader is: trials ended (called or expired) of all trials."""
    session = ReadingSession.objects.filter(reader=reader).first()
    if session is None:
        return ReaderProgress("not started", 0, 0, reader.study.images_per_session + reader.study.training_images)
    counts = Trial.objects.filter(session=session).aggregate(
        total=Count("pk"), called=Count("pk", filter=~Q(call="")), expired=Count("pk", filter=Q(expired=True))
    )
    done = counts["called"] + counts["expired"]
    return ReaderProgress(
        "finished" if done == counts["total"] else "reading", done, counts["expired"], counts["total"]
    )


def reader_main_score(*, reader: Reader) -> ConfusionCounts:
    """A reader's main-phase counts (training calls are never scored)."""
    trials = Trial.objects.filter(session__reader=reader, phase=Trial.Phase.MAIN)
    return confusion_counts(trials.values_list("bank_image__image_class", "call", "expired"))
