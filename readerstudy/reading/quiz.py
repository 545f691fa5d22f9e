"""The public quiz (the paper's Figure 1B): a grid of bank images, visitors mark each real or
synthetic, then see the answer key and their score.

Nothing is stored about a visitor: a quiz is a random seed, signed so visitors cannot pick one;
the seed draws the images from the quiz pool, so the image URLs and the answer key are
recomputed from it. The quiz pool is kept apart from every study's pools (``QuizImage``)."""

import secrets
from collections import Counter

import numpy as np
from django.core import signing
from django.db import transaction

from generator.models import BankImage
from readerstudy.core.errors import ApplicationError

from .apart import apart_from_main_pools, people_first_draw
from .models import PoolEntry, QuizImage, Study

QUIZ_SIZE = 10
SALT = "synthread.quiz"


class QuizError(ApplicationError):
    """A quiz pool that cannot be filled or a quiz that cannot be drawn; the message says why."""


@transaction.atomic
def quiz_pool_fill(*, per_class: int, seed: int | None = None) -> dict[str, int]:
    """Move ``per_class`` random active images of each class that no study uses into the quiz
    pool. Its answers are public, so it takes no person and no pixels any main pool shows, and
    its real images come from as few people as it takes (each of them is lost to main pools).
    Returns the pool's size per class."""
    rng = np.random.default_rng(seed)
    free = BankImage.objects.filter(status=BankImage.Status.ACTIVE, quiz_entry__isnull=True).exclude(
        pk__in=PoolEntry.objects.values("bank_image")
    )
    free = apart_from_main_pools(free).filter(matrix_size=_quiz_matrix_size(free))
    for image_class in BankImage.ImageClass.values:
        of_class = free.filter(image_class=image_class)
        if image_class == BankImage.ImageClass.REAL:
            what = "real image(s) in no study's pools whose people no main pool shows"
            chosen = people_first_draw(rng, of_class, per_class, what=what, error=QuizError)
        else:
            ids = list(of_class.order_by("pk").values_list("pk", flat=True))
            if len(ids) < per_class:
                raise QuizError(
                    f"Only {len(ids)} active synthetic image(s) are in no study's pools; asked {per_class}."
                )
            chosen = rng.choice(np.asarray(ids, dtype=np.int64), size=per_class, replace=False)
        QuizImage.objects.bulk_create(QuizImage(bank_image_id=int(i)) for i in chosen)
    return quiz_pool_counts()


def _quiz_matrix_size(free) -> int | None:
    """One size for the whole quiz (a size would tell the classes apart): the pool's, else the most
    common among the free images."""
    current = QuizImage.objects.values_list("bank_image__matrix_size", flat=True).first()
    if current is not None:
        return current
    sizes = Counter(free.values_list("matrix_size", flat=True))
    return sizes.most_common(1)[0][0] if sizes else None


def quiz_pool_counts() -> dict[str, int]:
    entries = QuizImage.objects.filter(bank_image__status=BankImage.Status.ACTIVE)
    return {c: entries.filter(bank_image__image_class=c).count() for c in BankImage.ImageClass.values}


def quiz_new(*, study: Study) -> str:
    """A new quiz of the study: its signed token."""
    return signing.dumps({"study": study.pk, "seed": secrets.randbits(48)}, salt=SALT, compress=True)


def quiz_images(*, study: Study, token: str) -> list[BankImage]:
    """The quiz's images in their grid order (about half of each class), from its token."""
    try:
        data = signing.loads(token, salt=SALT)
    except signing.BadSignature:
        raise QuizError("This quiz link is not valid.") from None
    if data.get("study") != study.pk:
        raise QuizError("This quiz link is not valid.")
    rng = np.random.default_rng(data["seed"])
    pool = QuizImage.objects.filter(bank_image__status=BankImage.Status.ACTIVE)
    ids = []
    for image_class, count in (
        (BankImage.ImageClass.REAL, QUIZ_SIZE // 2),
        (BankImage.ImageClass.SYNTHETIC, QUIZ_SIZE - QUIZ_SIZE // 2),
    ):
        of_class = list(
            pool.filter(bank_image__image_class=image_class).order_by("pk").values_list("bank_image_id", flat=True)
        )
        if len(of_class) < count:
            raise QuizError("The quiz pool is too small; an admin must fill it (manage.py quiz_pool).")
        ids += [int(i) for i in rng.choice(np.asarray(of_class, dtype=np.int64), size=count, replace=False)]
    ids = [int(i) for i in rng.permutation(ids)]
    images = BankImage.objects.in_bulk(ids)
    return [images[i] for i in ids]


def quiz_score(*, images: list[BankImage], marks: list[str]) -> tuple[list[dict], int]:
    """The answer key beside the visitor's marks, and how many marks were right."""
    key = [
        {"index": index, "truth": image.image_class, "mark": mark, "right": mark == image.image_class}
        for index, (image, mark) in enumerate(zip(images, marks, strict=True))
    ]
    return key, sum(item["right"] for item in key)
