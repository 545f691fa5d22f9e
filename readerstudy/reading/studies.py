"""Studies: creating one with the protocol's defaults, finding one by name or id."""

from django.core.exceptions import ValidationError

from readerstudy.core.errors import ApplicationError

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
