"""Media on a real S3 API (moto's standalone server on loopback): the prefix listing that S3
needs, bank images served to a reader (read once, then from the process's cache), a volume upload
and the audit bundle. The training checkpoints' round trip through S3, resumed by a worker on
another machine, is in test_training_worker.py."""

import hashlib
import io
import json
import zipfile
from datetime import timedelta

import boto3
import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone

from generator.models import BankImage, TrainingJob, UploadJob, Volume
from generator.uploads import upload_job_create
from readerstudy.core.jobs import JobState
from readerstudy.core.storage import storage_delete_prefix, storage_files
from readerstudy.reading.models import Reader, Study
from readerstudy.results.exports import study_bundle
from tests.factories import DatasetFactory, StudyFactory, UserFactory, write_nifti
from tests.support import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _s3(env: dict):
    """A client of the test's S3 server, to ask it directly."""
    return boto3.client(
        "s3",
        endpoint_url=env["AWS_S3_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_S3_REGION_NAME"],
    )


def _bucket(env: dict) -> list[str]:
    """Every object key in the test's bucket, asked of S3 directly."""
    listed = _s3(env).list_objects_v2(Bucket=env["AWS_STORAGE_BUCKET_NAME"])
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_a_folder_is_found_by_listing_its_prefix(s3_storage):
    for name in ("runs/7/run/checkpoint", "runs/7/run/samples/samples-3.png", "runs/70/run/checkpoint"):
        default_storage.save(name, ContentFile(b"x"))
    assert not default_storage.exists("runs/7/run")  # S3 has no folders: the pitfall itself
    assert storage_files("runs/7/run") == ["runs/7/run/checkpoint", "runs/7/run/samples/samples-3.png"]
    assert storage_files("runs/8") == []
    assert storage_delete_prefix("runs/7") == 2
    assert _bucket(s3_storage) == ["runs/70/run/checkpoint"]


def test_a_reader_reads_a_session_whose_images_live_on_s3(s3_storage, client):
    study = StudyFactory(name="on S3", state=Study.State.OPEN, pools=(3, 1), pools__image_size=64)
    assert all(key.startswith("bank/") for key in _bucket(s3_storage)) and len(_bucket(s3_storage)) == 8
    user = UserFactory(role="readers")
    Reader.objects.create(user=user, study=study)
    client.force_login(user)
    served = []
    while (state := client.get(f"/api/v1/me/session?study={study.pk}").json())["phase"] != "finished":
        image = client.get(state["image_url"])
        assert image.status_code == 200
        trial_image = BankImage.objects.get(trials__token=state["token"])
        with trial_image.file.open("rb") as stored:
            assert image.content == stored.read()
        served.append((state, trial_image))
        if len(served) == 1:
            # Read once: with the object gone from S3, a reload within the window still serves it.
            default_storage.delete(trial_image.file.name)
            assert client.get(state["image_url"]).content == image.content
        call = {"token": state["token"], "call": "real"}
        recorded = client.post(f"/api/v1/me/calls?study={study.pk}", call, content_type="application/json")
        assert recorded.status_code == 201
    assert len(served) == 2 + 4


def test_a_volume_upload_waits_on_s3_and_a_worker_stores_its_volume_there(s3_storage, start_worker, client, tmp_path):
    dataset = DatasetFactory(name="s3-upload")
    head = np.random.default_rng(0).normal(100, 10, (24, 24, 20)).astype("float32")
    write_nifti(tmp_path / "head.nii.gz", head, voxel_size_mm=(6.0, 6.0, 6.0))  # 144 × 144 × 120 mm
    client.force_login(UserFactory(role="admins"))
    upload = SimpleUploadedFile("head.nii.gz", (tmp_path / "head.nii.gz").read_bytes())
    response = client.post(f"/api/v1/datasets/{dataset.pk}/volumes/", {"files": [upload], "align": "false"})
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    assert _bucket(s3_storage) == [f"uploads/{job_id}/upload-0.nii.gz"]  # the raw file, waiting for a worker
    start_worker("cpu")  # the `default` queue's worker, as docker-compose runs it
    job = wait_for(
        lambda: (job := UploadJob.objects.get(pk=job_id)).is_finished and job, timeout=120, what="the ingest"
    )
    assert job.state == JobState.SUCCEEDED, job.error
    assert [(row["name"], row["outcome"]) for row in job.results] == [("head.nii.gz", "stored")]
    volume = Volume.objects.get(dataset=dataset)
    assert _bucket(s3_storage) == [volume.file.name]  # the raw upload gone, the de-identified volume kept
    with volume.file.open("rb") as stored:
        assert stored.read(2) == b"\x1f\x8b"  # our own fresh NIfTI, gzipped


def test_a_dead_uploads_files_are_gone_after_a_worker_starts(s3_storage, start_worker, settings, tmp_path):
    dataset = DatasetFactory(name="leftovers")
    uploads = [SimpleUploadedFile("Doe_Jane.nii.gz", b"raw bytes"), SimpleUploadedFile("b.nii.gz", b"more")]
    dead = upload_job_create(dataset=dataset, uploads=uploads[:1])
    waiting = upload_job_create(dataset=dataset, uploads=uploads[1:])
    # As a worker killed mid-ingest leaves it, once the job has ended (out of attempts): the stored
    # copy, and a working copy on this machine.
    UploadJob.objects.filter(pk=dead.pk).update(state=JobState.FAILED, error="worker lost")
    # And one whose web process died while storing it, an hour ago: a file stored, no file list.
    unfinished = UploadJob.objects.create(dataset=dataset, queued_at=timezone.now())
    default_storage.save(f"{unfinished.storage_prefix}/upload-0.nii.gz", ContentFile(b"half an upload"))
    UploadJob.objects.filter(pk=unfinished.pk).update(created_at=timezone.now() - timedelta(hours=2))
    work_root = tmp_path / "var" / "uploads"
    (work_root / str(dead.pk)).mkdir(parents=True)
    (work_root / str(dead.pk) / "upload-0.nii.gz").write_bytes(b"raw bytes")
    assert len(_bucket(s3_storage)) == 3
    start_worker("gpu")  # the upload queue is `default`: this worker leaves the waiting job alone
    wait_for(lambda: len(_bucket(s3_storage)) == 1, timeout=30, what="the dead upload's files to go")
    assert _bucket(s3_storage) == [f"uploads/{waiting.pk}/upload-0.nii.gz"]  # a live job's files stay
    assert not (work_root / str(dead.pk)).exists()
    assert UploadJob.objects.get(pk=dead.pk).raw_removed
    unfinished.refresh_from_db()
    assert unfinished.state == JobState.FAILED and "never finished" in unfinished.error and unfinished.raw_removed


def test_the_bundle_reads_its_images_and_generators_from_s3(s3_storage, client):
    study = StudyFactory(name="bundle on S3", state=Study.State.OPEN, pools=(3, 1), pools__image_size=64)
    job = TrainingJob.objects.create(dataset=DatasetFactory(), preset="quick-64", config={})
    job.generator_file.save("generator.keras", ContentFile(b"a generator"))
    BankImage.objects.filter(image_class="synthetic").update(training_job=job)
    user = UserFactory(role="readers")
    Reader.objects.create(user=user, study=study)
    client.force_login(user)
    while (state := client.get(f"/api/v1/me/session?study={study.pk}").json())["phase"] != "finished":
        client.get(state["image_url"])
        call = {"token": state["token"], "call": "real"}
        client.post(f"/api/v1/me/calls?study={study.pk}", call, content_type="application/json")
    assert job.generator_file.name in _bucket(s3_storage)
    with zipfile.ZipFile(io.BytesIO(study_bundle(study=study))) as bundle:
        generators = json.loads(bundle.read(next(n for n in bundle.namelist() if n.endswith("generators.json"))))
    assert generators[0]["generator_sha256"] == hashlib.sha256(b"a generator").hexdigest()


def test_ensure_bucket_creates_a_missing_bucket_once(s3_storage, settings):
    fresh = f"{s3_storage['AWS_STORAGE_BUCKET_NAME']}-fresh"
    settings.AWS_STORAGE_BUCKET_NAME = fresh
    settings.STORAGES = {**settings.STORAGES}  # a new default_storage, on the fresh bucket's name
    s3 = _s3(s3_storage)
    assert fresh not in {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}
    out = io.StringIO()
    call_command("ensure_bucket", stdout=out)
    assert out.getvalue().strip() == f"Bucket {fresh!r} created."
    assert fresh in {bucket["Name"] for bucket in s3.list_buckets()["Buckets"]}
    call_command("ensure_bucket", stdout=out)
    assert out.getvalue().splitlines()[-1] == f"Bucket {fresh!r} exists."
    default_storage.save("bank/x.png", ContentFile(b"x"))  # and media go there
    assert [item["Key"] for item in s3.list_objects_v2(Bucket=fresh)["Contents"]] == ["bank/x.png"]


def test_ensure_bucket_on_local_disk_does_nothing(settings, tmp_path):
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}
    out = io.StringIO()
    call_command("ensure_bucket", stdout=out)
    assert out.getvalue().strip() == "Media are on local disk: no bucket to create."
