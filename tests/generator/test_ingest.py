"""Ingesting volumes (generator/ingest.py, the admin upload, the API, ingest_volumes): bad files
are reported with their reason, good files of the same batch are kept, nothing is stored twice,
and nothing identifying survives."""

import gzip
import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from generator.ingest import dataset_get_or_create, volumes_ingest
from generator.models import AlignmentJob, UploadJob, Volume
from generator.uploads import upload_job_work
from readerstudy.core.jobs import JobState, job_run
from readerstudy.core.storage import storage_files
from tests.factories import UserFactory, write_nifti

pytestmark = pytest.mark.django_db


@pytest.fixture
def batch(tmp_path):
    """One good volume and three bad files, as an admin might drop them in one upload."""
    rng = np.random.default_rng(0)
    good = write_nifti(tmp_path / "anon.nii.gz", rng.random((120, 140, 110)) * 100, (1.2, 1.2, 1.2))
    text = tmp_path / "notes.nii"
    text.write_text("this is not an image")
    four_d = write_nifti(tmp_path / "fmri.nii.gz", rng.random((40, 40, 40, 5)), (3.0, 3.0, 3.0))
    flat = write_nifti(tmp_path / "flat.nii", rng.random((200, 200)), (1.0, 1.0, 1.0))
    return {"good": good, "text": text, "four_d": four_d, "flat": flat}


def test_a_bad_file_is_reported_and_the_good_ones_are_kept(batch):
    dataset = dataset_get_or_create(name="t1")
    results = volumes_ingest(dataset=dataset, files=[(path, path.name) for path in batch.values()])
    outcomes = {result.name: result for result in results}
    assert outcomes["anon.nii.gz"].outcome == "stored"
    assert outcomes["notes.nii"].outcome == "error"
    assert "4D" in outcomes["fmri.nii.gz"].message and "5" in outcomes["fmri.nii.gz"].message
    assert "2D" in outcomes["flat.nii"].message
    assert Volume.objects.count() == 1
    volume = Volume.objects.get()
    assert (volume.subject.label, volume.shape, volume.voxel_size_mm) == ("sub-001", [120, 140, 110], [1.2, 1.2, 1.2])


def test_the_same_file_twice_is_recognised_not_stored_twice(batch):
    dataset = dataset_get_or_create(name="t1")
    first = volumes_ingest(dataset=dataset, files=[(batch["good"], "a.nii.gz")])
    second = volumes_ingest(dataset=dataset, files=[(batch["good"], "copy-of-a.nii.gz")])
    assert [first[0].outcome, second[0].outcome] == ["stored", "duplicate"]
    assert "sub-001 in t1" in second[0].message
    assert Volume.objects.count() == 1


def test_the_stored_volume_is_a_fresh_nifti_without_header_text(tmp_path):
    import nibabel as nib

    data = np.random.default_rng(1).random((120, 120, 120)).astype(np.float32)
    image = nib.Nifti1Image(data, np.eye(4))
    image.header["descrip"] = b"Doe^Jane 1970-01-01"
    path = tmp_path / "Doe_Jane.nii"
    nib.save(image, str(path))
    [result] = volumes_ingest(dataset=dataset_get_or_create(name="t1"), files=[(path, path.name)])
    stored = result.volume.file.open("rb").read()
    assert b"Doe" not in gzip.decompress(stored)
    assert "Doe" not in result.volume.file.name and "Doe" not in result.volume.subject.label
    assert result.volume.source_name == "Doe_Jane.nii"  # kept for admins only


def test_dataset_names_are_checked():
    with pytest.raises(ValueError, match="letters, digits"):
        dataset_get_or_create(name="../etc")


def _upload(path, name=None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name or path.name, path.read_bytes())


def _ingest_on_worker(job_id: int) -> UploadJob:
    """What a worker does with a queued upload, run in this process."""
    assert job_run(model=UploadJob, job_id=job_id, work=upload_job_work) == JobState.SUCCEEDED
    return UploadJob.objects.get(pk=job_id)


def test_an_api_upload_answers_with_a_job_before_ingest_and_the_worker_gives_todays_verdicts(
    client, batch, django_capture_on_commit_callbacks, settings
):
    client.force_login(UserFactory(role="admins"))
    dataset = dataset_get_or_create(name="api")
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            f"/api/v1/datasets/{dataset.pk}/volumes/", {"files": [_upload(batch["good"]), _upload(batch["text"])]}
        )
    assert response.status_code == 202, response.content
    queued = response.json()
    assert queued["state"] == "queued" and queued["file_names"] == ["anon.nii.gz", "notes.nii"]
    assert queued["progress"] == {"step": 0, "total": 2} and queued["results"] == []
    assert len(callbacks) == 1 and not Volume.objects.exists()  # nothing ingested in the request
    assert len(storage_files(f"uploads/{queued['id']}")) == 2  # the raw files wait in private storage

    job = _ingest_on_worker(queued["id"])
    body = {row["name"]: row for row in client.get(f"/api/v1/upload-jobs/{job.pk}/").json()["results"]}
    assert body["anon.nii.gz"]["outcome"] == "stored" and body["anon.nii.gz"]["volume"] == Volume.objects.get().pk
    assert body["notes.nii"]["outcome"] == "error" and "not a NIfTI image" in body["notes.nii"]["message"]
    assert AlignmentJob.objects.count() == 1
    assert storage_files(f"uploads/{job.pk}") == [] and job.raw_removed  # nothing raw outlives the job
    assert not (settings.MEDIA_ROOT / "uploads" / str(job.pk)).exists()  # not even its folder
    assert job.progress["step"] == 2 and "1 stored, 0 already present, 1 refused" in job.log


def test_a_file_over_the_byte_limit_is_not_stored_and_costs_the_others_nothing(client, batch, settings):
    settings.VOLUME_MAX_UPLOAD_BYTES = batch["good"].stat().st_size
    client.force_login(UserFactory(role="admins"))
    dataset = dataset_get_or_create(name="api")
    big = SimpleUploadedFile("big.nii.gz", b"\0" * (settings.VOLUME_MAX_UPLOAD_BYTES + 1))
    response = client.post(f"/api/v1/datasets/{dataset.pk}/volumes/", {"files": [_upload(batch["good"]), big]})
    assert response.status_code == 202
    assert [name.rsplit("/", 1)[-1] for name in storage_files(f"uploads/{response.json()['id']}")] == [
        "upload-0.nii.gz"
    ]  # the big one never reached storage
    job = _ingest_on_worker(response.json()["id"])
    assert [(row["name"], row["outcome"]) for row in job.results] == [
        ("anon.nii.gz", "stored"),
        ("big.nii.gz", "error"),
    ]
    assert "over the upload limit" in job.results[1]["message"]


def test_the_api_refuses_non_admins(client, batch):
    dataset = dataset_get_or_create(name="api")
    for role in ("readers", "researchers"):
        client.force_login(UserFactory(role=role))
        assert client.get("/api/v1/volumes/").status_code == 403
        response = client.post(f"/api/v1/datasets/{dataset.pk}/volumes/", {"files": [_upload(batch["good"])]})
        assert response.status_code == 403
    assert Volume.objects.count() == 0


def test_the_admin_upload_page_follows_its_job_then_shows_every_outcome(client, batch):
    client.force_login(UserFactory(role="admins"))
    page = client.get("/admin/generator/volume/upload/")
    assert page.status_code == 200 and b"multiple" in page.content
    response = client.post(
        "/admin/generator/volume/upload/",
        {"dataset_name": "upl", "fov_mm": "190", "files": [_upload(batch["good"]), _upload(batch["four_d"])]},
    )
    job = UploadJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/admin/generator/volume/upload/{job.pk}/"
    following = client.get(response["Location"]).content.decode()
    assert 'http-equiv="refresh"' in following and "0 of 2 file(s)" in following and "<progress" in following
    _ingest_on_worker(job.pk)
    text = client.get(response["Location"]).content.decode()
    assert 'http-equiv="refresh"' not in text and "2 of 2 file(s)" in text
    assert "anon.nii.gz" in text and "stored" in text and "4D" in text
    assert Volume.objects.get().dataset.fov_mm == 190
    assert AlignmentJob.objects.count() == 1


def test_the_command_keeps_good_files_and_fails_loudly_on_bad_ones(batch, capsys):
    with pytest.raises(CommandError, match="1 file"):
        call_command("ingest_volumes", str(batch["good"]), str(batch["text"]), "--dataset", "cli", "--no-align")
    out = capsys.readouterr().out
    assert "stored" in out and "notes.nii" in out and "1 stored" in out
    assert Volume.objects.filter(dataset__name="cli").count() == 1


def test_the_command_explains_a_missing_path(tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        call_command("ingest_volumes", str(tmp_path / "nope.nii"), "--dataset", "cli")


def test_previews_are_for_admins_only(client, batch):
    [result] = volumes_ingest(dataset=dataset_get_or_create(name="p"), files=[(batch["good"], "a.nii.gz")])
    volume = result.volume
    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, format="PNG")
    from django.core.files.base import ContentFile

    volume.preview.save("p.png", ContentFile(png.getvalue()))
    url = f"/generator/volumes/{volume.pk}/preview.png"
    client.force_login(UserFactory(role="readers"))
    assert client.get(url).status_code in (302, 403)
    client.force_login(UserFactory(role="admins"))
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"


def test_the_command_queues_an_upload_job_and_a_dicom_folder_travels_as_a_zip(tmp_path, capsys):
    import numpy as np

    from tests.factories import write_dicom_series

    series = np.full((40, 50, 30), 100, dtype=np.int16)
    series[10, 20, 5] = 1000  # not one value throughout: an image
    folder = write_dicom_series(tmp_path / "series", series)
    call_command("ingest_volumes", str(folder), "--dataset", "queued", "--queue", "--no-align")
    assert "Upload job" in capsys.readouterr().out and not Volume.objects.exists()  # nothing ingested here
    job = UploadJob.objects.get()
    assert [entry["name"] for entry in job.files] == ["series.zip"] and not job.align
    job = _ingest_on_worker(job.pk)
    assert [row["outcome"] for row in job.results] == ["stored"], job.results
    assert Volume.objects.get().source_format == "dicom"
    assert AlignmentJob.objects.count() == 0  # --no-align
