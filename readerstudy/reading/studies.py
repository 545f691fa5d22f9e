"""Studies: creating one with the protocol's defaults, finding one by name or id, and which
studies a user may see the results of."""

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from readerstudy.core.errors import ApplicationError
from readerstudy.core.roles import Role, user_role

from .models import Study


class StudyError(ApplicationError):
    """A study that cannot be created or found as asked; the message says why."""


def study_create(**settings) -> Study:
    """A new draft study; unset settings keep the paper's protocol (Study's defaults)."""
    study = Study(**settings)
    try:
        study.full_clean()
    except ValidationError as error:
        raise StudyError(
            "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items())
        ) from error
    if not 0 <= study.synthetic_min <= study.synthetic_max <= study.images_per_session:
        raise StudyError("The synthetic range must lie within 0 and the images per session.")
    study.save()
    return study


def study_get(name_or_id: str) -> Study:
    study = Study.objects.filter(name=name_or_id).first()
    if study is None and name_or_id.isdigit():
        study = Study.objects.filter(pk=int(name_or_id)).first()
    if study is None:
        raise StudyError(f"No study named {name_or_id!r}.")
    return study


def studies_visible(*, user) -> QuerySet[Study]:
    """THE rule for whose results a user sees: admins every study, researchers the studies they
    are assigned to, anybody else none. Pages, exports, the API and the observer button ask it."""
    role = user_role(user)
    if role is Role.ADMIN:
        return Study.objects.all()
    if role is Role.RESEARCHER:
        return Study.objects.filter(researchers=user)
    return Study.objects.none()


def researchers_assignable():
    """The users who may be assigned to studies: the researchers (admins see every study anyway)."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(groups__name=Role.RESEARCHER.value).order_by("username")


def study_researchers_add(*, study: Study, usernames: list[str]) -> None:
    """Let these researchers see the study's results; an unknown name or a non-researcher is refused."""
    users = list(researchers_assignable().filter(username__in=usernames))
    missing = sorted(set(usernames) - {user.username for user in users})
    if missing:
        raise StudyError(f"Not researchers: {', '.join(missing)}. Add them with the researcher role first.")
    study.researchers.add(*users)
