"""The image bank: store rendered images (one checksum per active pixel set), exclude them, count them.

Filling the bank from a training job lives in ``bank_fill``, importing any generator's images in
``bank_import``."""

import secrets

import numpy as np
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Count

from generator.ml.rendering import pixel_checksum, render_png, to_display_uint8
from readerstudy.core.errors import ApplicationError

from .models import BankImage


class DuplicatePixels(ApplicationError):
    """The bank already holds an active image with exactly these pixels (``twin``)."""

    def __init__(self, twin: BankImage) -> None:
        super().__init__(f"same pixels as bank image {twin.pk}")
        self.twin = twin


def _active_twin(checksum: str) -> BankImage | None:
    return BankImage.objects.filter(pixel_checksum=checksum, status=BankImage.Status.ACTIVE).first()


def bank_image_store(*, pixels: np.ndarray, image_class: str, **provenance) -> BankImage:
    """Render through the one renderer and store under an opaque random key.

    One copy of each image: active pixels already in the bank raise DuplicatePixels (nothing is
    stored); an image stored excluded (a screened-out draw) may repeat."""
    key = secrets.token_hex(16)
    image = BankImage(
        image_class=image_class,
        storage_key=key,
        matrix_size=int(pixels.shape[0]),
        pixel_checksum=pixel_checksum(to_display_uint8(pixels)),
        **provenance,
    )
    active = image.status == BankImage.Status.ACTIVE
    if active and (twin := _active_twin(image.pixel_checksum)) is not None:
        raise DuplicatePixels(twin)
    image.file.save(f"{key}.png", ContentFile(render_png(pixels)), save=False)
    try:
        with transaction.atomic():
            image.save()
    except IntegrityError:  # the same pixels stored by a concurrent fill or import a moment ago
        image.file.storage.delete(image.file.name)
        twin = _active_twin(image.pixel_checksum) if active else None
        if twin is None:
            raise
        raise DuplicatePixels(twin) from None
    return image


def bank_image_store_or_exclude(*, pixels: np.ndarray, image_class: str, **provenance) -> BankImage:
    """Store a fill's image; a draw whose pixels the bank already holds is kept excluded, with its
    twin named, so every latent seed and grid slice drawn stays accounted for."""
    try:
        return bank_image_store(pixels=pixels, image_class=image_class, **provenance)
    except DuplicatePixels as duplicate:
        provenance |= {"status": BankImage.Status.EXCLUDED, "exclusion_reason": str(duplicate)}
        return bank_image_store(pixels=pixels, image_class=image_class, **provenance)


def bank_image_exclude(*, image: BankImage, reason: str) -> None:
    image.status = BankImage.Status.EXCLUDED
    image.exclusion_reason = reason[:255]
    image.save(update_fields=["status", "exclusion_reason"])


def bank_counts() -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {
        c: {s: 0 for s in BankImage.Status.values} for c in BankImage.ImageClass.values
    }
    for row in BankImage.objects.values("image_class", "status").order_by().annotate(n=Count("pk")):
        counts[row["image_class"]][row["status"]] = row["n"]
    return counts
