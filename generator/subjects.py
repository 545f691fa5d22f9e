"""Subjects are people: link volumes and real images to subjects, find subjects shared by two
sets of volumes, merge two subjects found to be one person (audited), and make the demo's
pseudo-subjects."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction

from readerstudy.core.errors import ApplicationError

from .models import BankImage, Dataset, Subject, SubjectMerge, SubjectPatientKey, Volume

LABEL_PATTERN = re.compile(r"[A-Za-z0-9][-A-Za-z0-9_.]{0,63}")


def subject_hash_key() -> bytes:
    """SUBJECT_HASH_KEY, or the embedded default's key in var/, made on first use."""
    if settings.SUBJECT_HASH_KEY:
        return settings.SUBJECT_HASH_KEY.encode()
    path = settings.SUBJECT_HASH_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # O_EXCL: two processes starting at once keep one key, the first one written
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "w") as out:
                out.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def subject_label_check(label: str) -> str:
    label = (label or "").strip()
    if not LABEL_PATTERN.fullmatch(label):
        raise ApplicationError(
            f"Subject label {label!r}: start with a letter or digit; use letters, digits, '-', '_' and '.' "
            "(at most 64)."
        )
    return label


def subject_next_label() -> str:
    numbers = [
        int(match.group(1))
        for label in Subject.objects.filter(label__startswith="sub-").values_list("label", flat=True)
        if (match := re.fullmatch(r"sub-(\d+)", label))
    ]
    return f"sub-{max(numbers, default=0) + 1:03d}"


def subject_get_or_create(*, label: str, kind: str = Subject.Kind.PERSON, note: str = "") -> Subject:
    label = subject_label_check(label)
    try:
        with transaction.atomic():
            subject, _ = Subject.objects.get_or_create(label=label, defaults={"kind": kind, "note": note})
    except IntegrityError:  # created by a concurrent upload a moment ago
        subject = Subject.objects.get(label=label)
    return subject


def _subject_create_numbered() -> Subject:
    for _ in range(5):  # another upload may take the same numbered label at the same moment
        try:
            with transaction.atomic():
                return Subject.objects.create(label=subject_next_label())
        except IntegrityError:
            continue
    raise ApplicationError("Could not find a free subject label; try again.")


def subject_for_volume(*, label: str | None, patient_key: str | None) -> Subject:
    """The subject a new volume belongs to: the admin's label, else the subject its DICOM patient
    already links to, else a new numbered one. A patient key is linked to the subject on first use;
    a label that contradicts the link is refused (merge the two subjects if they are one person)."""
    linked = (
        SubjectPatientKey.objects.select_related("subject").filter(key=patient_key).first() if patient_key else None
    )
    if label:
        subject = subject_get_or_create(label=label)
        if linked is not None and linked.subject_id != subject.pk:
            raise ApplicationError(
                f"This series' patient is already subject {linked.subject.label}, not {subject.label}: "
                f"leave the label out, or merge the two subjects if they are one person."
            )
    elif linked is not None:
        return linked.subject
    else:
        subject = _subject_create_numbered()
    if patient_key and linked is None:
        try:
            with transaction.atomic():
                SubjectPatientKey.objects.create(key=patient_key, subject=subject)
        except IntegrityError:  # a concurrent upload of the same patient linked it first
            return SubjectPatientKey.objects.get(key=patient_key).subject
    return subject


def subjects_of_datasets(datasets: Iterable[Dataset]) -> set[int]:
    return set(Volume.objects.filter(dataset__in=list(datasets)).values_list("subject_id", flat=True))


def subjects_shared(*, training: Dataset, held_out: Dataset) -> list[Subject]:
    """Subjects with volumes in both datasets: a held-out set holding them is not held out."""
    shared = subjects_of_datasets([training]) & subjects_of_datasets([held_out])
    return list(Subject.objects.filter(pk__in=shared).order_by("label"))


def subject_merge(*, keep: Subject, merge: Subject, user, reason: str = "") -> SubjectMerge:
    """Move ``merge``'s volumes, real images and patient links to ``keep``, delete it, and record
    who did it, when and why. A bank image's subject is a fact about the scan, not a reader's
    evidence: correcting it changes no call, so it moves even for images already shown."""
    if keep.pk == merge.pk:
        raise ApplicationError("Choose two different subjects to merge.")
    with transaction.atomic():
        kept, merged = (
            Subject.objects.select_for_update().get(pk=keep.pk),
            Subject.objects.select_for_update().get(pk=merge.pk),
        )
        volume_ids = list(merged.volumes.order_by("pk").values_list("pk", flat=True))
        image_ids = list(merged.bank_images.order_by("pk").values_list("pk", flat=True))
        Volume.objects.filter(pk__in=volume_ids).update(subject=kept)
        BankImage.objects.filter(pk__in=image_ids).update(subject=kept)
        keys_moved = SubjectPatientKey.objects.filter(subject=merged).update(subject=kept)
        record = SubjectMerge.objects.create(
            kept=kept,
            merged_label=merged.label,
            merged_kind=merged.kind,
            volume_ids=volume_ids,
            bank_image_ids=image_ids,
            patient_keys_moved=keys_moved,
            reason=reason,
            user=user,
        )
        merged.delete()
    return record


def mni152_template_path() -> Path:
    """The MNI152 2009 T1 template inside the nilearn wheel (no download)."""
    import nilearn

    return Path(nilearn.__file__).parent / "datasets" / "data" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def pseudo_subject_files(*, count: int, on_written: Callable[[int, Path], None] | None = None) -> list[Path]:
    """Demo pseudo-subjects made from the template, cached in var/demo-subjects (made once)."""
    from generator.ml.pseudo_subjects import write_pseudo_subjects  # scipy and nibabel: only here

    folder = Path(settings.VAR_DIR) / "demo-subjects"
    return write_pseudo_subjects(mni152_template_path(), folder, count=count, on_written=on_written)
