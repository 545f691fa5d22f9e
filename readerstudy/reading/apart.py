"""Revealed images stay apart (DESIGN.md, "Subjects are people"): an image whose answer is ever
shown (any study's training pool, the public quiz) shares no person and no pixels with any main
pool, and a study's images all have one matrix size. One check for every path that sets pools
(the admin, the commands, "pools from the bank", the demo), and the marks that let the bank's
draws avoid a refused split in the first place.

Main pools may hold a million images; what is revealed (training pools, the quiz) is what readers
practise on and visitors play with: hundreds. So the revealed side is read into Python once as
``Marks`` (its people, pixels and ids) and main pools are filtered by those lists, which the
database answers from its indexes; a main pool's own people come from ``PoolSubject``."""

from dataclasses import dataclass

import numpy as np
from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from generator.models import BankImage, Subject
from readerstudy.core.errors import ApplicationError

from .models import PoolEntry, PoolSubject, QuizImage, Study
from .sessions import SessionError

SHOWN_IN_MESSAGES = 10


class PoolsNotApart(SessionError):
    """Pools that would let a revealed answer, or its person, into a main pool; the message says which."""


@dataclass(frozen=True)
class Marks:
    """What a set of images gives away: the people it shows, its pixels (checksums) and its ids."""

    subjects: frozenset[int] = frozenset()
    checksums: frozenset[str] = frozenset()
    ids: frozenset[int] = frozenset()

    @classmethod
    def of(cls, images: QuerySet) -> "Marks":
        rows = list(images.values_list("pk", "subject_id", "pixel_checksum"))
        return cls(
            subjects=frozenset(subject for _, subject, _ in rows if subject is not None),
            checksums=frozenset(checksum for *_, checksum in rows),
            ids=frozenset(pk for pk, *_ in rows),
        )

    def __or__(self, other: "Marks") -> "Marks":
        return Marks(self.subjects | other.subjects, self.checksums | other.checksums, self.ids | other.ids)


def _other_studies(entries: QuerySet, study: Study | None) -> QuerySet:
    return entries if study is None else entries.exclude(study=study)


def revealed_elsewhere(*, study: Study | None = None) -> Marks:
    """What is revealed outside ``study``: other studies' training pools and the quiz."""
    training = _other_studies(PoolEntry.objects.filter(pool=PoolEntry.Pool.TRAINING), study)
    return Marks.of(
        BankImage.objects.filter(
            Q(pk__in=training.values("bank_image")) | Q(pk__in=QuizImage.objects.values("bank_image"))
        )
    )


def shown_in_main_elsewhere(*, study: Study | None = None) -> Marks:
    """What other studies' main pools show, as far as revealing an image could leak it: their
    people (from ``PoolSubject``), and the pixels of their images no longer active (an active
    image's pixels are its own: the bank holds one active copy, and ``apart_from_main_pools``
    keeps the images themselves out). Small, whatever the size of the pools."""
    people = _other_studies(PoolSubject.objects.filter(pool=PoolEntry.Pool.MAIN, subject_key__gt=0), study)
    entries = _other_studies(PoolEntry.objects.filter(pool=PoolEntry.Pool.MAIN), study)
    inactive = BankImage.objects.filter(pk__in=entries.values("bank_image")).exclude(status=BankImage.Status.ACTIVE)
    return Marks(
        subjects=frozenset(people.values_list("subject_key", flat=True)),
        checksums=frozenset(inactive.values_list("pixel_checksum", flat=True)),
    )


def apart_from(images: QuerySet, marks: Marks) -> QuerySet:
    """``images`` without those that show a marked person, have marked pixels, or are marked."""
    return (
        images.exclude(subject__in=sorted(marks.subjects))
        .exclude(pixel_checksum__in=sorted(marks.checksums))
        .exclude(pk__in=sorted(marks.ids))
    )


def apart_from_main_pools(images: QuerySet, *, study: Study | None = None) -> QuerySet:
    """``images`` that may be revealed: in no other study's main pool, sharing no person or pixels with one."""
    in_main = _other_studies(PoolEntry.objects.filter(pool=PoolEntry.Pool.MAIN), study)
    images = images.exclude(Exists(in_main.filter(bank_image=OuterRef("pk"))))
    return apart_from(images, shown_in_main_elsewhere(study=study))


def _listed(values: list, what: str) -> str:
    shown = ", ".join(str(value) for value in values[:SHOWN_IN_MESSAGES])
    return f"{what} {shown}{' …' if len(values) > SHOWN_IN_MESSAGES else ''}"


def _shared(images: QuerySet, marks: Marks) -> list[str]:
    """What ``images`` share with the marks: people (labels) and pixels or images (ids), as phrases."""
    people = list(
        Subject.objects.filter(pk__in=sorted(marks.subjects))
        .filter(pk__in=images.filter(subject__in=sorted(marks.subjects)).values("subject"))
        .order_by("label")
        .values_list("label", flat=True)[: SHOWN_IN_MESSAGES + 1]
    )
    twins = list(
        images.filter(Q(pixel_checksum__in=sorted(marks.checksums)) | Q(pk__in=sorted(marks.ids)))
        .order_by("pk")
        .values_list("pk", flat=True)[: SHOWN_IN_MESSAGES + 1]
    )
    return ([_listed(people, "subjects")] if people else []) + ([_listed(twins, "bank images")] if twins else [])


def pools_check_apart(*, study: Study, main: QuerySet, training: QuerySet) -> None:
    """Refuse pools that mix sizes, hold quiz images, overlap, or bring a revealed answer's
    person or pixels into a main pool (this study's or another's)."""
    quiz = (main | training).filter(quiz_entry__isnull=False).count()
    if quiz:
        raise PoolsNotApart(f"{quiz} image(s) are in the public quiz pool; its answers are public, leave them out.")
    overlap = main.filter(pk__in=training.values("pk")).count()
    if overlap:
        raise PoolsNotApart(f"{overlap} image(s) are in both the main and the training pool; keep them apart.")
    sizes = sorted(set((main | training).values_list("matrix_size", flat=True).distinct()))
    if len(sizes) > 1:
        raise PoolsNotApart(
            "A study's images must share one matrix size (a size tells the class apart when a generator "
            f"works at another than the real slices); these pools mix {', '.join(f'{n}²' for n in sizes)}."
        )
    training_marks = Marks.of(training)
    revealed = Marks(training_marks.subjects, training_marks.checksums) | revealed_elsewhere(study=study)
    problems = [f"the main pool shares {what} with revealed images" for what in _shared(main, revealed)]
    main_elsewhere = _other_studies(PoolEntry.objects.filter(pool=PoolEntry.Pool.MAIN), study)
    shown_elsewhere = BankImage.objects.filter(pk__in=main_elsewhere.values("bank_image"))
    problems += [
        f"the training pool shares {what} with another study's main pool"
        for what in _shared(shown_elsewhere, training_marks)
    ]
    if problems:
        raise PoolsNotApart(
            "Images whose answers are revealed (training pools, the quiz) must share no person and no pixels "
            f"with any main pool: {'; '.join(problems)}. Pools from the bank choose such a split by themselves."
        )


def people_first_draw(
    rng: np.random.Generator, real: QuerySet, count: int, *, what: str, error: type[ApplicationError] = PoolsNotApart
) -> list[int]:
    """``count`` of these real images from as few people as it takes (every person drawn is lost to
    main pools once their images are revealed): people in random order until they have enough
    images, then images at random among theirs. An image without a subject is a person of its own."""
    people = list(real.exclude(subject=None).values_list("subject").annotate(n=Count("pk")).order_by("subject"))
    people += [(-image_id, 1) for image_id in real.filter(subject=None).order_by("pk").values_list("pk", flat=True)]
    chosen, enough = [], 0
    for position in rng.permutation(len(people)):
        if enough >= count:
            break
        chosen.append(int(people[position][0]))
        enough += people[position][1]
    if enough < count:
        raise error(f"Only {enough} active {what} are free; {count} asked.")
    ids = sorted(
        real.filter(
            Q(subject__in=[key for key in chosen if key > 0]) | Q(pk__in=[-key for key in chosen if key < 0])
        ).values_list("pk", flat=True)
    )
    return [int(ids[i]) for i in sorted(rng.choice(len(ids), size=count, replace=False))]
