"""Filling the bank from a training job: queue a fill (refused for a collapsed generator without an
audited override), then generate, screen, render and store (``bank_fill_work``, on a worker)."""

import logging
import tempfile
from pathlib import Path

import numpy as np
from django.db import transaction
from django.utils import timezone

from generator.ml.grid import PAPER_GRID
from readerstudy.core.errors import ApplicationError
from readerstudy.core.jobs import JobHandle, JobState, job_enqueue

from .bank import bank_image_store_or_exclude
from .models import BankFillJob, BankImage, Dataset, TrainingJob, Volume
from .subjects import subjects_shared
from .volumes import volume_slice_source

logger = logging.getLogger(__name__)

BATCH = 64
HELD_OUT_SLICES_PER_VOLUME = 200


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
    from generator.ml.streaming import grid_slices  # numba: loaded on the worker that fills, not on web

    return grid_slices(source, indices, matrix_size=size, fov_mm=fov_mm)


def _screen_index(sources: list, *, size: int, fov_mm: float):
    from generator.ml.screening import ScreenIndex

    return ScreenIndex.from_sources(sources, matrix_size=size, fov_mm=fov_mm)


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
