"""Importing any generator's images (and their real slices) into the bank, with subjects from a manifest."""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from generator.ml.image_import import ImageImportError, file_sha256, load_external_image
from readerstudy.core.errors import ApplicationError

from .bank import DuplicatePixels, bank_image_store
from .models import BankImage
from .subjects import subject_get_or_create

logger = logging.getLogger(__name__)


@dataclass
class ImportResult:
    name: str
    outcome: str  # "imported", "duplicate" (the same pixels are in the bank: not stored) or "refused"
    message: str
    image: BankImage | None = None

    @property
    def ok(self) -> bool:
        return self.outcome != "refused"


def images_import(
    *,
    files: Iterable[tuple[Path, str]],
    generator_name: str,
    image_class: str,
    note: str = "",
    expected_size: int | None = None,
    subject_label: str = "",
    subject_labels: dict[str, str] | None = None,
) -> list[ImportResult]:
    """Import 2D images made elsewhere through the same renderer; a bad file never costs the rest.

    Real images are of people: each names its subject, ``subject_labels`` per file name (a
    manifest) or ``subject_label`` for all, so held-out splits keep one person's slices together.
    Synthetic images have none: each imported file is an independent draw."""
    if image_class not in BankImage.ImageClass.values:
        raise ApplicationError(f"Class must be 'real' or 'synthetic', not {image_class!r}.")
    if not generator_name.strip():
        raise ApplicationError("Name the generator (or the source of the real images).")
    files = list(files)
    labels = _import_subject_labels(files, image_class, subject_label, subject_labels or {})
    results = []
    for path, name in files:
        try:
            imported = load_external_image(Path(path), expected_size=expected_size)
            subject = subject_get_or_create(label=labels[name]) if name in labels else None
            image = bank_image_store(
                pixels=imported.pixels,
                image_class=image_class,
                generator_name=generator_name.strip(),
                external_checksum=file_sha256(Path(path)),
                subject=subject,
                note=note,
            )
        except DuplicatePixels as duplicate:
            results.append(ImportResult(name, "duplicate", f"Not stored: {duplicate}.", duplicate.twin))
            continue
        except (ImageImportError, ApplicationError) as error:
            results.append(ImportResult(name, "refused", str(error)))
            continue
        except Exception as error:  # a reader library's surprise must not cost the rest of the batch
            logger.exception("Unexpected failure importing %s", name)
            message = f"Could not read this file: {type(error).__name__}: {error}"
            results.append(ImportResult(name, "refused", message))
            continue
        results.append(ImportResult(name, "imported", f"Imported as {image} ({image.matrix_size}²).", image))
    return results


def _import_subject_labels(
    files: list[tuple[Path, str]], image_class: str, subject_label: str, subject_labels: dict[str, str]
) -> dict[str, str]:
    names = [name for _, name in files]
    if image_class == BankImage.ImageClass.SYNTHETIC:
        if subject_label or subject_labels:
            raise ApplicationError("Synthetic images show no person: give a subject for real images only.")
        return {}
    if subject_label and subject_labels:
        raise ApplicationError("Give one subject for all files or a manifest, not both.")
    if subject_label:
        return dict.fromkeys(names, subject_label.strip())
    missing = [name for name in names if not subject_labels.get(name, "").strip()]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ApplicationError(
            f"Real images need their subject (the person scanned), so that held-out splits keep one "
            f"person's slices together; none given for {shown}. Give one subject for all files, or a "
            "manifest (CSV with columns file,subject)."
        )
    return {name: subject_labels[name].strip() for name in names}


def subject_manifest_read(text: str) -> dict[str, str]:
    """A CSV manifest of file → subject (header ``file,subject``), file names compared without folders."""
    import csv

    rows = list(csv.DictReader(text.splitlines()))
    if not rows or not {"file", "subject"} <= set(rows[0]):
        raise ApplicationError("The manifest must be a CSV with a header row naming the columns file and subject.")
    return {Path(row["file"].strip()).name: (row["subject"] or "").strip() for row in rows if row.get("file")}
