"""Subjects are people (generator/subjects.py, ingest, the admin, the API): DICOM series of one
patient link to one subject through a keyed hash (the ID stored nowhere), placeholder IDs never
link, labels name people across datasets, merges are audited, and "held out" means other people."""

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from generator.bank_fill import _held_out_volumes, bank_fill_create
from generator.ingest import dataset_get_or_create, volumes_ingest
from generator.ml.patients import is_placeholder_patient_id, patient_key
from generator.models import Subject, SubjectMerge, SubjectPatientKey, TrainingJob, Volume
from generator.subjects import subject_hash_key, subject_merge
from readerstudy.core.jobs import JobState
from readerstudy.results.scoring import calls_rows
from tests.factories import (
    REAL,
    SubjectFactory,
    TrialFactory,
    UserFactory,
    VolumeFactory,
    bank_images,
    write_dicom_series,
    write_nifti,
)

pytestmark = pytest.mark.django_db

PATIENT_ID = "PID-27182818"


def _series(tmp_path, name: str, *, patient_id: str, seed: int, issuer: str = "") -> object:
    array = np.random.default_rng(seed).integers(0, 1000, (32, 32, 24)).astype(np.int16)
    tags = {"0010|0020": patient_id, "0010|0021": issuer}
    return write_dicom_series(
        tmp_path / name, array, series_uid=f"1.2.826.0.1.3680043.2.1125.9.{seed}", patient=tags, spacing=(6, 6, 6)
    )


def _stored_text() -> str:
    """Every text column of every table, and every file name and byte under media, as one string."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            chunks.extend(str(row) for row in cursor.fetchall())
    folders = [""]
    while folders:
        folder = folders.pop()
        subfolders, files = default_storage.listdir(folder)
        folders += [f"{folder}{sub}/" for sub in subfolders]
        for name in files:
            chunks.append(name)
            with default_storage.open(f"{folder}{name}", "rb") as stored:
                chunks.append(stored.read().decode("latin-1"))
    return "\n".join(chunks)


def test_two_series_of_one_patient_land_on_one_subject_and_the_id_is_stored_nowhere(tmp_path):
    first = _series(tmp_path, "2019", patient_id=PATIENT_ID, seed=1)
    second = _series(tmp_path, "2021", patient_id=PATIENT_ID, seed=2)
    other = _series(tmp_path, "other", patient_id="PID-31415926", seed=3)
    results = volumes_ingest(
        dataset=dataset_get_or_create(name="scans"), files=[(first, "a.zip"), (second, "b.zip"), (other, "c.zip")]
    )
    assert [result.outcome for result in results] == ["stored"] * 3, [result.message for result in results]
    assert "linked by its DICOM patient ID" in results[1].message
    a, b, c = (result.volume for result in results)
    assert a.subject == b.subject != c.subject
    assert Subject.objects.count() == 2 and SubjectPatientKey.objects.count() == 2
    # A later series of the same patient in another dataset finds the same person.
    later = _series(tmp_path, "2023", patient_id=PATIENT_ID, seed=4)
    [result] = volumes_ingest(dataset=dataset_get_or_create(name="follow-up"), files=[(later, "d.zip")])
    assert result.volume.subject == a.subject
    stored = _stored_text()
    assert PATIENT_ID not in stored and "27182818" not in stored
    assert "DOE" not in stored  # the name, too (PATIENT_TAGS of the writer)


def test_the_issuer_keeps_two_hospitals_equal_numbers_apart():
    secret = b"k" * 32
    assert patient_key("12345", "HOSP-A", secret=secret) != patient_key("12345", "HOSP-B", secret=secret)
    assert patient_key("12345", secret=secret) != patient_key("12345", secret=b"other key")
    assert len(patient_key("12345", secret=secret)) == 64


@pytest.mark.parametrize("placeholder", ["", "  ", "ANONYMOUS", "anonymized", "0", "0000000", "XXXX", "N/A", "none"])
def test_a_placeholder_patient_id_never_links(tmp_path, placeholder):
    assert is_placeholder_patient_id(placeholder)
    assert patient_key(placeholder, secret=b"k") is None
    files = [(_series(tmp_path, f"s{n}", patient_id=placeholder, seed=n), f"s{n}.zip") for n in range(2)]
    results = volumes_ingest(dataset=dataset_get_or_create(name="anon"), files=files)
    assert [result.outcome for result in results] == ["stored", "stored"]
    assert results[0].volume.subject != results[1].volume.subject
    assert not SubjectPatientKey.objects.exists()


def test_a_real_patient_id_is_no_placeholder():
    assert not any(map(is_placeholder_patient_id, ["PID-1", "12345", "A0", "anonymous-7"[:3] + "X1"]))


def test_a_label_names_a_person_across_datasets_and_a_contradicting_label_is_refused(tmp_path):
    nifti = write_nifti(tmp_path / "t1.nii.gz", np.random.default_rng(0).random((40, 40, 40)) * 100, (4, 4, 4))
    [named] = volumes_ingest(
        dataset=dataset_get_or_create(name="nifti"), files=[(nifti, "t1.nii.gz")], subject_labels={"t1.nii.gz": "p-7"}
    )
    dicom = _series(tmp_path, "dicom", patient_id=PATIENT_ID, seed=5)
    [linked] = volumes_ingest(
        dataset=dataset_get_or_create(name="dicom"), files=[(dicom, "d.zip")], subject_labels={"d.zip": "p-7"}
    )
    assert named.volume.subject == linked.volume.subject and linked.volume.subject.label == "p-7"
    again = _series(tmp_path, "again", patient_id=PATIENT_ID, seed=6)
    [refused] = volumes_ingest(
        dataset=dataset_get_or_create(name="dicom"), files=[(again, "e.zip")], subject_labels={"e.zip": "p-8"}
    )
    assert refused.outcome == "error" and "already subject p-7" in refused.message
    assert not Subject.objects.filter(label="p-8").exists()  # nothing half-made


def test_the_command_takes_subject_labels_and_numbers_the_rest_installation_wide(tmp_path, capsys):
    rng = np.random.default_rng(1)
    paths = [write_nifti(tmp_path / f"v{n}.nii.gz", rng.random((40, 40, 40)) * 100, (4, 4, 4)) for n in range(3)]
    call_command("ingest_volumes", *map(str, paths[:2]), "--dataset", "one", "--no-align", "--subject", "v1.nii.gz=p-1")
    call_command("ingest_volumes", str(paths[2]), "--dataset", "two", "--no-align")
    labels = dict(Volume.objects.values_list("source_name", "subject__label"))
    assert labels == {"v0.nii.gz": "sub-001", "v1.nii.gz": "p-1", "v2.nii.gz": "sub-002"}


def test_a_merge_moves_volumes_images_and_links_and_is_audited(client, tmp_path):
    keep, other = SubjectFactory(label="p-1"), SubjectFactory(label="p-1-again")
    volumes = [VolumeFactory(subject=keep), VolumeFactory(subject=other)]
    images = bank_images(2, REAL, volume=volumes[1], grid_index=4)
    SubjectPatientKey.objects.create(key="a" * 64, subject=other)
    admin = UserFactory(role="admins")
    client.force_login(admin)
    response = client.post(
        "/api/v1/subjects/p-1/merge/", {"merge": "p-1-again", "reason": "same birth date and scanner"}
    )
    assert response.status_code == 201, response.content
    assert response.json()["volume_ids"] == [volumes[1].pk]
    assert set(Volume.objects.values_list("subject__label", flat=True)) == {"p-1"}
    assert {image.subject_id for image in type(images[0]).objects.filter(pk__in=[i.pk for i in images])} == {keep.pk}
    assert SubjectPatientKey.objects.get().subject == keep
    assert not Subject.objects.filter(label="p-1-again").exists()
    record = SubjectMerge.objects.get()
    assert (record.merged_label, record.user, record.reason) == ("p-1-again", admin, "same birth date and scanner")
    assert client.get("/api/v1/subjects/p-1/").json()["volumes"] == [v.pk for v in volumes]
    with pytest.raises(ValueError, match="two different"):
        subject_merge(keep=keep, merge=keep, user=admin)


def test_the_admin_merges_two_subjects_after_asking_which_to_keep_and_why(client):
    first, second = SubjectFactory(label="a-1"), SubjectFactory(label="a-2")
    VolumeFactory(subject=second)
    client.force_login(UserFactory(role="admins", is_staff=True, is_superuser=True))
    selection = {"action": "merge_subjects", "_selected_action": [first.pk, second.pk]}
    page = client.post("/admin/generator/subject/", selection)
    assert page.status_code == 200 and "Why they are one person" in page.content.decode()
    client.post("/admin/generator/subject/", selection | {"confirm": "yes", "keep": second.pk, "reason": "typo"})
    assert list(Subject.objects.values_list("label", flat=True)) == ["a-2"]
    assert SubjectMerge.objects.get().merged_label == "a-1"


def test_subjects_are_for_admins_only(client):
    SubjectFactory(label="p-1")
    for role in ("readers", "researchers"):
        client.force_login(UserFactory(role=role))
        assert client.get("/api/v1/subjects/").status_code == 403


@pytest.fixture
def trained_job():
    dataset = dataset_get_or_create(name="train")
    job = TrainingJob.objects.create(dataset=dataset, config={}, state=JobState.SUCCEEDED)
    job.generator_file.save("g.keras", ContentFile(b"not a model"), save=True)
    return job


def test_a_held_out_dataset_sharing_a_subject_is_refused_naming_the_subjects(trained_job):
    held_out = dataset_get_or_create(name="held-out")
    twice = SubjectFactory(label="sub-twice")
    VolumeFactory(dataset=trained_job.dataset, subject=twice, status=Volume.Status.READY)
    VolumeFactory(dataset=held_out, subject=twice, status=Volume.Status.READY)
    VolumeFactory(dataset=held_out, status=Volume.Status.READY)
    with pytest.raises(ValueError, match=r"shares 1 subject\(s\).*sub-twice"):
        bank_fill_create(training_job=trained_job, synthetic_count=4, held_out_dataset=held_out)


def test_the_screen_holds_out_only_subjects_the_generator_never_saw(trained_job):
    """Two volumes of one person fall on one side: a merge after a fill was queued cannot put a
    training subject's second scan into the held-out set."""
    held_out = dataset_get_or_create(name="held-out")
    person = SubjectFactory(label="person")
    VolumeFactory(dataset=trained_job.dataset, subject=person, status=Volume.Status.READY)
    later_merged = VolumeFactory(dataset=held_out, status=Volume.Status.READY)
    stranger = VolumeFactory(dataset=held_out, status=Volume.Status.READY)
    fill = bank_fill_create(training_job=trained_job, synthetic_count=4, held_out_dataset=held_out)
    subject_merge(keep=person, merge=later_merged.subject, user=None, reason="found later")
    assert list(_held_out_volumes(fill.held_out_dataset, training=trained_job.dataset)) == [stranger]


def test_calls_csv_names_the_subject_of_real_images_only():
    real_trial = TrialFactory(bank_image=bank_images(1, REAL, subject=SubjectFactory(label="p-42"))[0])
    real_trial.session.trials.update(call="real", shown_at=timezone.now(), answered_at=timezone.now())  # ended
    rows = calls_rows(study=real_trial.session.reader.study)
    assert {row["case"]: row["subject"] for row in rows}[real_trial.bank_image_id] == "p-42"
    assert {row["truth"] for row in rows} == {"real", "synthetic"}
    assert all((row["subject"] == "") == (row["truth"] == "synthetic") for row in rows)


def test_the_embedded_default_keeps_one_generated_key(settings, tmp_path):
    settings.SUBJECT_HASH_KEY = ""
    settings.SUBJECT_HASH_KEY_FILE = tmp_path / "var" / "subject-hash.key"
    first = subject_hash_key()
    assert len(first) == 64 and subject_hash_key() == first
    assert oct(settings.SUBJECT_HASH_KEY_FILE.stat().st_mode & 0o777) == "0o600"
    settings.SUBJECT_HASH_KEY = "from-the-environment"
    assert subject_hash_key() == b"from-the-environment"
