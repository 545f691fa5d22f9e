"""The image bank: store rendered images, fill the bank from a training job (generate, screen,
render, store), and import images made by any other generator."""

import logging
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from generator.ml.grid import PAPER_GRID
from generator.ml.image_import import ImageImportError, file_sha256, load_external_image
from generator.ml.rendering import pixel_checksum, render_png, to_display_uint8
from readerstudy.core.errors import ApplicationError
from readerstudy.core.jobs import JobHandle, JobState, job_enqueue

from .models import BankFillJob, BankImage, Dataset, TrainingJob, Volume
from .subjects import subject_get_or_create, subjects_shared
from .volumes import volume_slice_source

logger = logging.getLogger(__name__)

BATCH = 64
HELD_OUT_SLICES_PER_VOLUME = 200


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


# --- Filling from our generator ---------------------------------------------------------------


def bank_fill_create(
    *,
    training_job: TrainingJob,
    synthetic_count: int,
    real_count: int | None = None,
    held_out_dataset: Dataset | None = None,
    seed: int = 0,
    user=None,
    collapse_override_reason: str = "",
) -> BankFillJob:
    """Queue a fill. A generator judged collapsed (``TrainingJob.diversity``) fills the bank only
    with ``collapse_override_reason`` (and the admin who gave it), both kept on the fill."""
    if training_job.state != JobState.SUCCEEDED or not training_job.generator_file:
        raise ApplicationError(f"Training job {training_job.pk} has not finished with a generator yet.")
    if synthetic_count < 1:
        raise ApplicationError("Ask for at least one synthetic image.")
    if held_out_dataset is not None:
        _check_held_out(training=training_job.dataset, held_out=held_out_dataset)
    diversity = training_job.diversity or {}
    override = _collapse_override(training_job, diversity, reason=collapse_override_reason.strip(), user=user)
    with transaction.atomic():
        # The job's next block of latent seeds: a fill never draws a seed another fill drew.
        locked = TrainingJob.objects.select_for_update().get(pk=training_job.pk)
        first_latent_seed = locked.next_latent_seed
        TrainingJob.objects.filter(pk=locked.pk).update(next_latent_seed=first_latent_seed + synthetic_count)
        job = BankFillJob.objects.create(
            training_job=training_job,
            synthetic_count=synthetic_count,
            real_count=synthetic_count if real_count is None else real_count,
            held_out_dataset=held_out_dataset,
            seed=seed,
            first_latent_seed=first_latent_seed,
            diversity=diversity,
            **override,
        )
        job_enqueue(job=job)
    return job


def _collapse_override(training_job: TrainingJob, diversity: dict, *, reason: str, user) -> dict:
    """The override fields of a fill: none for a generator not judged collapsed; for a collapsed
    one, the admin's reason, name and time, or an error that says what was measured."""
    if diversity.get("verdict") != "collapsed":
        return {}
    if not reason:
        raise ApplicationError(
            f"Training job {training_job.pk}'s generator has collapsed: its images are far more alike than real "
            f"slices (MS-SSIM of synthetic pairs {diversity['ms_ssim_synthetic']:.3f} against "
            f"{diversity['ms_ssim_real']:.3f} for real pairs: {diversity['excess']:+.3f}, over the margin of "
            f"{diversity['margin']:.2f}). Train a better generator, or give a reason to fill the bank anyway; "
            "the reason, your name and the time are kept with the fill and listed in the study's audit bundle."
        )
    return {"collapse_override_reason": reason, "collapse_override_by": user, "collapse_override_at": timezone.now()}


def _check_held_out(*, training: Dataset, held_out: Dataset) -> None:
    """Held out means other people: refuse a held-out dataset that shares a subject with training."""
    if held_out.pk == training.pk:
        raise ApplicationError("The held-out dataset must hold other subjects than the training dataset.")
    shared = subjects_shared(training=training, held_out=held_out)
    if shared:
        labels = ", ".join(subject.label for subject in shared[:10]) + (" …" if len(shared) > 10 else "")
        raise ApplicationError(
            f"The held-out dataset {held_out} shares {len(shared)} subject(s) with the training dataset "
            f"{training}: {labels}. Their scans are near-copies of anatomy the generator saw, so they would "
            "set the screen's threshold too low; hold out a dataset of other people."
        )
    if not held_out.volumes.filter(status=Volume.Status.READY).exists():
        raise ApplicationError(f"The held-out dataset {held_out} has no aligned volume yet.")


def _held_out_volumes(held_out: Dataset, *, training: Dataset):
    """Aligned held-out volumes whose subjects the generator never saw (a merge after the fill was
    queued may have made one a training subject: it is left out, not trusted)."""
    return (
        held_out.volumes.filter(status=Volume.Status.READY)
        .exclude(subject__in=Volume.objects.filter(dataset=training).values("subject"))
        .select_related("subject", "dataset")
        .order_by("pk")
    )


def _ready_volumes(dataset: Dataset) -> list[tuple[Volume, object]]:
    """Each aligned volume of a dataset with its slice source."""
    volumes = dataset.volumes.filter(status=Volume.Status.READY).select_related("subject", "dataset").order_by("pk")
    return [(v, volume_slice_source(volume=v)) for v in volumes]


def _grid_slices(source, indices: np.ndarray, *, size: int, fov_mm: float) -> np.ndarray:
    from generator.ml.slicing import sample_slices  # numba: loaded on the worker that fills, not on web

    params = PAPER_GRID.params_array(indices)
    return sample_slices(
        source.volume, source.voxel_from_world, params, centre_mm=source.centre_mm, matrix_size=size, fov_mm=fov_mm
    )


def _screen_index(sources: list, *, size: int, fov_mm: float):
    from generator.ml.screening import ScreenIndex, SliceKey, screening_grid_indices

    indices = screening_grid_indices()

    def batches():
        for source in sources:
            for start in range(0, len(indices), 1024):
                chunk = indices[start : start + 1024]
                slices = _grid_slices(source, chunk, size=size, fov_mm=fov_mm)
                yield slices, [SliceKey(source.name, int(i)) for i in chunk]

    return ScreenIndex.from_batches(batches())


def _held_out_images(
    dataset: Dataset | None, *, training: Dataset, size: int, fov_mm: float, seed: int
) -> np.ndarray | None:
    if dataset is None:
        return None
    rng = np.random.default_rng(seed)
    images = [
        _grid_slices(
            source,
            np.sort(rng.choice(len(PAPER_GRID), HELD_OUT_SLICES_PER_VOLUME, replace=False)),
            size=size,
            fov_mm=fov_mm,
        )
        for source in (volume_slice_source(volume=v) for v in _held_out_volumes(dataset, training=training))
    ]
    return np.concatenate(images) if images else None


def _real_slice_picks(job: BankFillJob, volumes: list[Volume]) -> list[tuple[int, int]]:
    """(volume position, grid index) of the fill's real slices: drawn without replacement, and
    never a slice an earlier fill put in the bank. Fixed by the seed and the other fills' slices,
    so a fill re-run after its worker died draws the same list."""
    taken = set(
        BankImage.objects.filter(volume__in=volumes, image_class=BankImage.ImageClass.REAL)
        .exclude(fill_job=job)
        .values_list("volume_id", "grid_index")
    )
    free = len(volumes) * len(PAPER_GRID) - len(taken)
    if job.real_count > free:
        raise ApplicationError(f"The training volumes have {free} grid slices not in the bank; {job.real_count} asked.")
    rng = np.random.default_rng(job.seed)
    picks: list[tuple[int, int]] = []
    while len(picks) < job.real_count:
        position, grid_index = int(rng.integers(len(volumes))), int(rng.integers(len(PAPER_GRID)))
        if (volumes[position].pk, grid_index) not in taken:
            taken.add((volumes[position].pk, grid_index))
            picks.append((position, grid_index))
    return picks


def bank_fill_work(job: BankFillJob, handle: JobHandle) -> None:
    from generator.ml.dcgan import TrainingConfig
    from generator.ml.screening import (
        data_copying_statistic,
        screen,
        threshold_from_held_out,
        threshold_without_held_out,
    )
    from generator.ml.training import generate_from_seeds, load_generator

    training_job = job.training_job
    size = TrainingConfig.from_dict(training_job.config).size
    fov_mm = training_job.dataset.fov_mm
    total = job.synthetic_count + job.real_count
    # Re-running a fill (a worker died) continues where the stored images end.
    synthetic_done = job.images.filter(image_class=BankImage.ImageClass.SYNTHETIC).count()
    real_done = job.images.filter(image_class=BankImage.ImageClass.REAL).count()
    handle.report(step=synthetic_done + real_done, total=total, stage="building the memorisation screen")

    volumes_and_sources = _ready_volumes(training_job.dataset)
    sources = [source for _, source in volumes_and_sources]
    index = _screen_index(sources, size=size, fov_mm=fov_mm)
    held_out = _held_out_images(
        job.held_out_dataset, training=training_job.dataset, size=size, fov_mm=fov_mm, seed=job.seed
    )
    if held_out is not None and len(held_out):
        threshold = threshold_from_held_out(index, held_out)
    else:
        threshold = threshold_without_held_out(index)

    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / "generator.keras"
        with training_job.generator_file.open("rb") as stored, local.open("wb") as out:
            out.write(stored.read())
        generator = load_generator(local)

    generated_features = []
    for start in range(synthetic_done, job.synthetic_count, BATCH):
        handle.checkpoint()
        seeds = [job.first_latent_seed + i for i in range(start, min(start + BATCH, job.synthetic_count))]
        images = generate_from_seeds(generator, seeds)
        generated_features.append(index.features_of(images))
        for seed, pixels, result in zip(seeds, images, screen(index, images, threshold), strict=True):
            bank_image_store_or_exclude(
                pixels=pixels,
                image_class=BankImage.ImageClass.SYNTHETIC,
                training_job=training_job,
                latent_seed=seed,
                fill_job=job,
                nearest_training_distance=result.distance,
                status=BankImage.Status.EXCLUDED if result.excluded else BankImage.Status.ACTIVE,
                exclusion_reason=result.reason[:255],
            )
        handle.report(step=start + len(seeds) + real_done, total=total, stage="generating")

    # Real images come from the very grid the generator trained on, each recording its slice.
    picks = _real_slice_picks(job, [volume for volume, _ in volumes_and_sources])
    for start in range(real_done, job.real_count, BATCH):
        handle.checkpoint()
        for source_index, grid_index in picks[start : start + BATCH]:
            volume, source = volumes_and_sources[source_index]
            pixels = _grid_slices(source, np.array([grid_index]), size=size, fov_mm=fov_mm)[0]
            bank_image_store_or_exclude(
                pixels=pixels,
                image_class=BankImage.ImageClass.REAL,
                volume=volume,
                subject=volume.subject,
                grid_index=grid_index,
                fill_job=job,
            )
        handle.report(step=job.synthetic_count + min(start + BATCH, job.real_count), total=total, stage="real slices")

    copying = data_copying_statistic(
        index.reference_features,
        index.features_of(held_out) if held_out is not None and len(held_out) else None,
        np.concatenate(generated_features) if generated_features else index.features_of(np.zeros((0, size, size))),
        seed=job.seed,
    )
    held_out_subjects = (
        sorted({v.subject.label for v in _held_out_volumes(job.held_out_dataset, training=training_job.dataset)})
        if job.held_out_dataset
        else []
    )
    report = {
        "held_out_subjects": held_out_subjects,
        "threshold": float(threshold),
        "threshold_basis": getattr(threshold, "basis", ""),
        "threshold_note": getattr(threshold, "note", ""),
        "excluded": job.images.filter(status=BankImage.Status.EXCLUDED).count(),
        "data_copying": copying.value,
        "data_copying_cells": copying.cells_used,
        "data_copying_note": copying.note,
    }
    BankFillJob.objects.filter(pk=job.pk).update(report=report)
    handle.report(step=total, total=total, stage="done")


# --- Importing any generator's images ---------------------------------------------------------


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
