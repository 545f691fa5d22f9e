"""Services on stored volumes: align to the template, correct by hand, preview, and hand their
slices to the training pipeline."""

from __future__ import annotations

import gzip
import logging
from typing import TYPE_CHECKING

import numpy as np
from django.core.files.base import ContentFile
from django.db import transaction

from readerstudy.core.errors import ApplicationError
from readerstudy.core.jobs import JobHandle, job_enqueue

from .models import AlignmentJob, Volume, VolumeCorrection

if TYPE_CHECKING:
    from generator.ml.alignment import RigidAlignment
    from generator.ml.streaming import SliceSource
    from generator.ml.volumes import LoadedVolume

# The ml modules below load SimpleITK and numba: imported where the work happens (on workers), so
# web processes, which only list and queue, never load them.

logger = logging.getLogger(__name__)

CORRECTION_FIELDS = ("correction_lr_deg", "correction_ap_deg", "correction_cc_deg", "correction_level_mm")


def volume_load(*, volume: Volume) -> LoadedVolume:
    """The stored (de-identified, canonical) NIfTI back as arrays."""
    with volume.file.open("rb") as stored:
        raw = stored.read()
    import nibabel as nib  # with scipy and pydicom behind it: only where volumes are read

    from generator.ml.volumes import LoadedVolume

    image = nib.Nifti1Image.from_bytes(gzip.decompress(raw))
    data = np.asarray(image.dataobj, dtype=np.float32)
    return LoadedVolume(
        data=data,
        affine=image.affine,
        voxel_size_mm=tuple(float(v) for v in image.header.get_zooms()[:3]),
        source_format=volume.source_format,
    )


def volume_alignment(*, volume: Volume) -> RigidAlignment:
    """The volume's automatic alignment with the admin's correction composed on top."""
    from generator.ml.alignment import RigidAlignment

    if not volume.alignment:
        raise ApplicationError(f"{volume} is not aligned yet.")
    automatic = RigidAlignment.from_json(volume.alignment)
    if not volume.has_correction:
        return automatic
    return automatic.with_correction(
        lr_deg=volume.correction_lr_deg,
        ap_deg=volume.correction_ap_deg,
        cc_deg=volume.correction_cc_deg,
        level_mm=volume.correction_level_mm,
    )


def _normalised(loaded: LoadedVolume, alignment: RigidAlignment) -> np.ndarray:
    from generator.ml.alignment import brain_mask_in_native
    from generator.ml.slicing import normalise_intensity

    # One normalisation per volume, from its brain voxels: every slice of it shares the mapping.
    return normalise_intensity(loaded.data, mask=brain_mask_in_native(loaded, alignment))


def volume_render_preview(*, volume: Volume, loaded: LoadedVolume | None = None) -> None:
    from generator.ml.previews import alignment_preview_png
    from generator.ml.slicing import DEFAULT_CENTRE_MM

    loaded = loaded or volume_load(volume=volume)
    alignment = volume_alignment(volume=volume)
    png = alignment_preview_png(
        _normalised(loaded, alignment),
        alignment.voxel_from_template_world,
        centre_mm=DEFAULT_CENTRE_MM,
        fov_mm=volume.dataset.fov_mm,
    )
    old_preview = volume.preview.name
    volume.preview.save(f"{volume.pk}-{volume.corrections.count()}.png", ContentFile(png), save=False)
    volume.save(update_fields=["preview"])
    if old_preview and old_preview != volume.preview.name:
        volume.preview.storage.delete(old_preview)


def volume_align(*, volume: Volume) -> Volume:
    """Register the volume to the template and render its preview; marks it ready or failed."""
    from generator.ml.alignment import align_to_template

    Volume.objects.filter(pk=volume.pk).update(status=Volume.Status.ALIGNING, error="")
    try:
        loaded = volume_load(volume=volume)
        alignment = align_to_template(loaded)
        volume.alignment = alignment.to_json()
        volume.status = Volume.Status.READY
        volume.error = ""
        volume.save(update_fields=["alignment", "status", "error"])
        volume_render_preview(volume=volume, loaded=loaded)
    except Exception as error:
        logger.exception("Alignment of %s failed", volume)
        volume.status = Volume.Status.FAILED
        volume.error = f"Alignment failed: {error}"
        volume.save(update_fields=["status", "error"])
        raise
    return volume


def volume_correct(*, volume: Volume, user, **corrections: float) -> VolumeCorrection:
    """Apply an admin's correction of the level and angles, record it, and redraw the preview."""
    unknown = set(corrections) - set(CORRECTION_FIELDS)
    if unknown:
        raise ApplicationError(f"Unknown correction field(s): {', '.join(sorted(unknown))}")
    with transaction.atomic():
        locked = Volume.objects.select_for_update().get(pk=volume.pk)
        before = {name: getattr(locked, name) for name in CORRECTION_FIELDS}
        for name, value in corrections.items():
            setattr(locked, name, float(value))
        after = {name: getattr(locked, name) for name in CORRECTION_FIELDS}
        locked.save(update_fields=list(CORRECTION_FIELDS))
        record = VolumeCorrection.objects.create(volume=locked, user=user, before=before, after=after)
    volume.refresh_from_db()
    if volume.alignment:
        volume_render_preview(volume=volume)
    return record


def volume_slice_source(*, volume: Volume) -> SliceSource:
    """What the slicer needs of a ready volume: normalised voxels and template→voxel geometry."""
    from generator.ml.slicing import DEFAULT_CENTRE_MM
    from generator.ml.streaming import SliceSource

    loaded = volume_load(volume=volume)
    alignment = volume_alignment(volume=volume)
    return SliceSource(
        volume=_normalised(loaded, alignment),
        voxel_from_world=alignment.voxel_from_template_world,
        centre_mm=DEFAULT_CENTRE_MM,
        name=str(volume),
    )


def alignment_job_create(*, volume: Volume) -> AlignmentJob:
    with transaction.atomic():
        Volume.objects.filter(pk=volume.pk).update(status=Volume.Status.ALIGNING, error="")
        job = AlignmentJob.objects.create(volume=volume)
        job_enqueue(job=job)
    return job


def alignment_job_work(job: AlignmentJob, handle: JobHandle) -> None:
    handle.report(step=0, total=1)
    volume_align(volume=job.volume)
    handle.report(step=1, total=1, **{"rotation_deg": job.volume.alignment.get("rotation_deg")})
