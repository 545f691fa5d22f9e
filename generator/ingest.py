"""Ingest uploaded files as de-identified volumes: every bad file is reported, none of the
good ones in the same batch is lost, and the same file twice is recognised."""

from __future__ import annotations

import contextlib
import gzip
import logging
import re
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction

from readerstudy.core.errors import ApplicationError

from .models import Dataset, Volume
from .subjects import subject_for_volume, subject_hash_key

if TYPE_CHECKING:
    from generator.ml.volumes import LoadedVolume

logger = logging.getLogger(__name__)


@dataclass
class IngestResult:
    """What became of one uploaded file."""

    name: str
    outcome: str  # "stored", "duplicate" or "error"
    message: str
    volume: Volume | None = None

    @property
    def ok(self) -> bool:
        return self.outcome != "error"


def dataset_get_or_create(*, name: str, fov_mm: float | None = None) -> Dataset:
    if not re.fullmatch(r"[-a-zA-Z0-9_]+", name or ""):
        raise ApplicationError(f"Dataset name {name!r}: use letters, digits, '-' and '_' only.")
    dataset, created = Dataset.objects.get_or_create(name=name, defaults={"fov_mm": fov_mm or 180.0})
    if not created and fov_mm is not None and dataset.fov_mm != fov_mm:
        raise ApplicationError(f"Dataset {name} already uses a field of view of {dataset.fov_mm:g} mm, not {fov_mm:g}.")
    return dataset


def nifti_gz_bytes(loaded: LoadedVolume) -> bytes:
    """The volume as a fresh NIfTI: pixel data and geometry only, no header text carried over."""
    import nibabel as nib  # with scipy and pydicom behind it: only where volumes are written

    image = nib.Nifti1Image(loaded.data.astype("float32"), loaded.affine)
    image.header["descrip"] = b""
    return gzip.compress(image.to_bytes(), compresslevel=6)


def _as_uploaded(message: str, path: Path, source_name: str) -> str:
    """A message names the file it read; an upload is read from a copy under our own name
    (``saved_uploads``, ``generator.uploads``), so name the file the admin uploaded instead."""
    return message.replace(path.name, Path(source_name).name)


def volume_ingest_one(
    *, dataset: Dataset, path: Path, source_name: str, subject_label: str | None = None, max_bytes: int | None = None
) -> IngestResult:
    """Check, convert and store one file (or DICOM folder, or zip of one series)."""
    # Loads SimpleITK and pydicom: here, not at import, so web processes that never ingest skip them.
    from generator.ml.volumes import VolumeError, file_checksum, load_volume

    try:
        checksum = file_checksum(path)
        existing = Volume.objects.filter(checksum=checksum).select_related("dataset").first()
        if existing is not None:
            return IngestResult(source_name, "duplicate", f"The same file is already stored as {existing}.", existing)
        loaded = load_volume(
            path,
            max_bytes=max_bytes or settings.VOLUME_MAX_UPLOAD_BYTES,
            max_voxels=settings.VOLUME_MAX_VOXELS,
            patient_secret=subject_hash_key(),
        )
    except VolumeError as error:
        return IngestResult(source_name, "error", _as_uploaded(str(error), path, source_name))
    except Exception as error:  # a reader library's surprise must not cost the rest of the batch
        logger.exception("Unexpected failure reading %s", source_name)
        message = f"Could not read this file: {type(error).__name__}: {error}"
        return IngestResult(source_name, "error", _as_uploaded(message, path, source_name))

    content = nifti_gz_bytes(loaded)
    try:
        with transaction.atomic():
            subject = subject_for_volume(label=subject_label, patient_key=loaded.patient_key)
            volume = Volume(
                dataset=dataset,
                subject=subject,
                source_name=source_name[:255],
                source_format=loaded.source_format,
                checksum=checksum,
                shape=[int(n) for n in loaded.shape],
                voxel_size_mm=[round(float(v), 4) for v in loaded.voxel_size_mm],
            )
            volume.file.save(f"{uuid.uuid4().hex}.nii.gz", ContentFile(content), save=False)
            volume.save()
    except ApplicationError as error:
        return IngestResult(source_name, "error", str(error))
    except IntegrityError:
        if Volume.objects.filter(checksum=checksum).exists():
            return IngestResult(source_name, "duplicate", "The same file was stored by a concurrent upload.")
        raise
    shape = "×".join(str(n) for n in volume.shape)
    voxels = "×".join(f"{v:g}" for v in volume.voxel_size_mm)
    linked = " (linked by its DICOM patient ID)" if loaded.patient_key and not subject_label else ""
    return IngestResult(source_name, "stored", f"Stored as {volume}{linked}: {shape} voxels of {voxels} mm.", volume)


def volumes_ingest(
    *,
    dataset: Dataset,
    files: Iterable[tuple[Path, str]],
    subject_labels: dict[str, str] | None = None,
    max_bytes: int | None = None,
    on_result: Callable[[IngestResult], None] | None = None,
) -> list[IngestResult]:
    """Ingest a batch of (path, original name) pairs; one bad file never stops the others."""
    results = []
    for path, source_name in files:
        result = volume_ingest_one(
            dataset=dataset,
            path=Path(path),
            source_name=source_name,
            subject_label=(subject_labels or {}).get(source_name),
            max_bytes=max_bytes,
        )
        results.append(result)
        if on_result:
            on_result(result)
    return results


@contextlib.contextmanager
def saved_uploads(uploads: Iterable) -> Iterator[list[tuple[Path, str]]]:
    """Uploaded files written to a temporary folder under our own names (only their suffixes kept:
    an uploaded name is never a path), as (path, original name) pairs; removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="synthread-upload-") as folder:
        files = []
        for index, upload in enumerate(uploads):
            suffixes = "".join(Path(upload.name).suffixes[-2:]).lower()
            target = Path(folder) / f"upload-{index}{suffixes}"
            with target.open("wb") as out:
                for chunk in upload.chunks():
                    out.write(chunk)
            files.append((target, Path(upload.name).name))
        yield files
