"""Stored volumes aligned to the template: previews, manual corrections with their audit trail,
slices for training, and alignment jobs run by a real worker."""

import io

import numpy as np
import pytest
from PIL import Image

from generator.ingest import dataset_get_or_create, volumes_ingest
from generator.ml.slicing import sample_slices
from generator.models import AlignmentJob, Volume, VolumeCorrection
from generator.volumes import alignment_job_create, volume_align, volume_correct, volume_slice_source
from readerstudy.core.jobs import JobState
from tests.factories import UserFactory, write_template_nifti
from tests.support import wait_for

SHIFT_MM = (6.0, -4.0, 5.0)


@pytest.fixture
def shifted_template(tmp_path):
    return write_template_nifti(tmp_path / "mni-shifted.nii.gz", shift_mm=SHIFT_MM)


def _ingest(path) -> Volume:
    [result] = volumes_ingest(dataset=dataset_get_or_create(name="mni"), files=[(path, path.name)])
    assert result.outcome == "stored", result.message
    return result.volume


def _preview(volume: Volume) -> Image.Image:
    return Image.open(io.BytesIO(volume.preview.open("rb").read()))


@pytest.mark.django_db
def test_alignment_recovers_the_shift_and_draws_a_preview(shifted_template):
    volume = volume_align(volume=_ingest(shifted_template))
    volume.refresh_from_db()
    assert volume.status == Volume.Status.READY
    np.testing.assert_allclose(volume.alignment["translation_mm"], SHIFT_MM, atol=1.0)
    np.testing.assert_allclose(volume.alignment["rotation_deg"], 0.0, atol=1.0)
    preview = _preview(volume)
    assert preview.size == (2 * 256 + 8, 256)
    axial = np.asarray(preview.convert("L"))[:, :256].astype(float)
    assert axial[96:160, 96:160].mean() > 3 * axial[:16, :16].mean() + 10  # brain in the middle, dark corners

    # The slice the training pipeline sees at grid centre is the template's own section at z=+6 mm.
    source = volume_slice_source(volume=volume)
    slice_ = sample_slices(
        source.volume,
        source.voxel_from_world,
        np.zeros((1, 5)),
        centre_mm=source.centre_mm,
        matrix_size=64,
        fov_mm=180.0,
    )[0]
    assert slice_.min() >= -1.0 and slice_.max() <= 1.0
    assert (slice_ > -0.5).mean() > 0.3  # a brain section, not background


@pytest.mark.django_db
def test_a_manual_correction_is_recorded_and_redraws_the_preview(shifted_template):
    admin = UserFactory(role="admins")
    volume = volume_align(volume=_ingest(shifted_template))
    before = np.asarray(_preview(volume))
    record = volume_correct(volume=volume, user=admin, correction_level_mm=8.0, correction_lr_deg=3.0)
    volume.refresh_from_db()
    assert record.before["correction_level_mm"] == 0.0
    assert record.after == {
        "correction_lr_deg": 3.0,
        "correction_ap_deg": 0.0,
        "correction_cc_deg": 0.0,
        "correction_level_mm": 8.0,
    }
    assert VolumeCorrection.objects.filter(volume=volume, user=admin).count() == 1
    assert not np.array_equal(before, np.asarray(_preview(volume)))
    with pytest.raises(ValueError, match="Unknown"):
        volume_correct(volume=volume, user=admin, correction_zoom=2.0)


@pytest.mark.django_db
def test_the_admin_change_form_records_corrections(client, shifted_template):
    admin = UserFactory(role="admins")
    volume = volume_align(volume=_ingest(shifted_template))
    client.force_login(admin)
    page = client.get(f"/admin/generator/volume/{volume.pk}/change/")
    assert page.status_code == 200 and f"/generator/volumes/{volume.pk}/preview.png" in page.content.decode()
    form = {
        "correction_lr_deg": "0",
        "correction_ap_deg": "0",
        "correction_cc_deg": "-2",
        "correction_level_mm": "4",
        "corrections-TOTAL_FORMS": "0",
        "corrections-INITIAL_FORMS": "0",
    }
    response = client.post(f"/admin/generator/volume/{volume.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    volume.refresh_from_db()
    assert (volume.correction_cc_deg, volume.correction_level_mm) == (-2.0, 4.0)
    assert VolumeCorrection.objects.get(volume=volume).user == admin


@pytest.mark.services
def test_a_worker_aligns_an_uploaded_volume(start_worker, shifted_template):
    start_worker("cpu")
    volume = _ingest(shifted_template)
    job = alignment_job_create(volume=volume)
    wait_for(lambda: AlignmentJob.objects.get(pk=job.pk).is_finished, timeout=120, what="the alignment job")
    job.refresh_from_db()
    volume.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.error
    assert volume.status == Volume.Status.READY and volume.preview
