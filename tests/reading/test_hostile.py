"""Hostile input (issue #9): dead or foreign trial tokens, forged and malformed calls, bad
uploads, readers and researchers probing pages that are not theirs, weak passwords and the
cookie settings behind HTTPS."""

import io
import json
import secrets
import tempfile
import zipfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.test import Client
from django.utils import timezone
from PIL import Image

from generator.ingest import dataset_get_or_create, volumes_ingest
from generator.models import BankImage, TrainingJob, UploadJob, Volume
from generator.uploads import upload_job_work
from readerstudy.core.jobs import JobState, job_run
from readerstudy.reading.models import Reader, Study, Trial
from readerstudy.reading.sessions import study_open
from tests.factories import PASSWORD, StudyFactory, UserFactory, write_nifti

pytestmark = pytest.mark.django_db


def _study(name: str) -> Study:
    return study_open(study=StudyFactory(name=name, pools=(3, 1), pools__image_size=32))


@pytest.fixture
def study() -> Study:
    return _study("hostile")


def _reader(study: Study):
    user = UserFactory(role="readers")
    Reader.objects.create(user=user, study=study)
    return user


def _state(client, study: Study) -> dict:
    return client.get(f"/api/v1/me/session?study={study.pk}").json()


def _post_call(client, study: Study, body: dict, **headers):
    return client.post(
        f"/api/v1/me/calls?study={study.pk}", json.dumps(body), content_type="application/json", **headers
    )


# --- trial tokens ---------------------------------------------------------------------------------


def test_forged_expired_reused_and_foreign_tokens_are_the_same_plain_404(client, study):
    other = _reader(study)
    client.force_login(other)
    foreign = _state(client, study)["token"]
    client.get(f"/reading/image/{foreign}")  # the other reader's clock runs: a live token

    client.force_login(_reader(study))
    first = _state(client, study)
    assert client.get(first["image_url"]).status_code == 200
    assert _post_call(client, study, {"token": first["token"], "call": "real"}).status_code == 201
    second = _state(client, study)
    assert client.get(second["image_url"]).status_code == 200
    # The second image was served a minute ago: its window has closed.
    Trial.objects.filter(token=second["token"]).update(shown_at=timezone.now() - timedelta(seconds=60))

    probes = {
        "forged": secrets.token_urlsafe(32),
        "another reader's": foreign,
        "reused (answered)": first["token"],
        "expired": second["token"],
    }
    responses = {why: client.get(f"/reading/image/{token}") for why, token in probes.items()}
    assert {why: r.status_code for why, r in responses.items()} == dict.fromkeys(probes, 404)
    bodies = {r.content for r in responses.values()}
    assert len(bodies) == 1, "a 404 body tells one dead token from another"
    headers = {tuple(sorted((k, v) for k, v in r.items() if k != "Date")) for r in responses.values()}
    assert len(headers) == 1
    body = next(iter(bodies)).lower()
    assert not any(hint in body for hint in (b"expired", b"another", b"reader", b"token", b"time"))
    assert Trial.objects.get(token=second["token"]).expired  # the dead one was recorded expired

    # The calls API: a forged token and another reader's answer alike, with no hint why.
    calls = [_post_call(client, study, {"token": token, "call": "real"}) for token in (probes["forged"], foreign)]
    assert [r.status_code for r in calls] == [404, 404]
    assert calls[0].content == calls[1].content
    assert not Trial.objects.filter(token=foreign).exclude(call="").exists()
    # The reader's own dead tokens are not foreign: by design (readerstudy/reading/trials.py) a replay
    # of the recorded call returns it (200) and a call on an expired trial is refused (409).
    assert _post_call(client, study, {"token": first["token"], "call": "real"}).status_code == 200
    assert _post_call(client, study, {"token": second["token"], "call": "real"}).status_code == 409


def test_a_call_without_the_csrf_token_is_403_and_records_nothing(study):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(_reader(study))
    assert browser.get(f"/reading/{study.pk}/read").status_code == 200  # sets the csrftoken cookie
    state = _state(browser, study)
    browser.get(state["image_url"])
    body = {"token": state["token"], "call": "real"}
    assert _post_call(browser, study, body).status_code == 403
    assert _post_call(browser, study, body, HTTP_X_CSRFTOKEN="forged" * 6).status_code == 403
    assert Trial.objects.get(token=state["token"]).call == ""
    csrf = browser.cookies["csrftoken"].value
    assert _post_call(browser, study, body, HTTP_X_CSRFTOKEN=csrf).status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        {"call": "unknown"},
        {"call": ""},
        {"call": "REAL"},
        {"call": None},
        {"call": ["real"]},
        {"call": "real", "confidence": 0},
        {"call": "real", "confidence": 6},
        {"call": "synthetic", "confidence": -1},
        {"call": "real", "confidence": "sure"},
        {"call": "real", "confidence": 2.5},
    ],
)
def test_malformed_calls_are_400_and_record_nothing(client, study, body):
    client.force_login(_reader(study))
    state = _state(client, study)
    client.get(state["image_url"])
    assert _post_call(client, study, {"token": state["token"], **body}).status_code == 400
    assert Trial.objects.get(token=state["token"]).call == ""


def test_a_call_on_a_trial_that_is_not_the_current_one_is_refused(client, study):
    user = _reader(study)
    client.force_login(user)
    current = _state(client, study)
    client.get(current["image_url"])
    later = Trial.objects.filter(session__reader__user=user).order_by("position").last()
    response = _post_call(client, study, {"token": later.token, "call": "real"})
    assert response.status_code == 409
    later.refresh_from_db()
    assert later.call == "" and later.shown_at is None
    assert _post_call(client, study, {"token": current["token"], "call": "real"}).status_code == 201


# --- uploads -----------------------------------------------------------------------------------


def _smooth_volume() -> np.ndarray:
    """A brain-sized blob that compresses well, so a good upload stays small."""
    z, y, x = np.mgrid[-1:1:100j, -1:1:110j, -1:1:100j]
    return (100 * np.exp(-(x**2 + y**2 + z**2) * 2)).astype(np.float32)


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def _multipart(files: list[tuple[str, bytes]], fields: dict[str, str]) -> tuple[bytes, str]:
    """A multipart body written by hand: Django's test client would strip a path from a file
    name before sending it, and a hostile client does not."""
    boundary = secrets.token_hex(16)
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    for filename, data in files:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _files_outside(root: Path, media: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file() and not path.is_relative_to(media)}


def test_a_hostile_upload_batch_keeps_the_good_file_and_writes_only_to_media(
    client, settings, tmp_path, media_root, monkeypatch
):
    good = write_nifti(tmp_path / "good.nii.gz", _smooth_volume(), (1.2, 1.2, 1.2))
    settings.VOLUME_MAX_UPLOAD_BYTES = 4 * good.stat().st_size
    scratch = tmp_path / "scratch"  # temporary files of the request, Django's and ours
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    rng = np.random.default_rng(0)
    body, content_type = _multipart(
        [
            ("../../escaped.nii.gz", good.read_bytes()),
            ("notes.nii", b"this is not a volume"),
            ("scan.nii.gz", b"\x1f\x8b not really gzip"),
            ("bomb.zip", _zip_bytes({"IM0001.dcm": b"\0" * 50_000_000})),
            ("evil.zip", _zip_bytes({"ok/IM0001.dcm": b"x", "../../../evil.txt": b"pwned"})),
            ("huge.nii.gz", rng.bytes(settings.VOLUME_MAX_UPLOAD_BYTES + 1)),
        ],
        {"align": "false"},
    )
    before = _files_outside(tmp_path, media_root)
    client.force_login(UserFactory(role="admins"))
    dataset = dataset_get_or_create(name="hostile")
    response = client.post(f"/api/v1/datasets/{dataset.pk}/volumes/", body, content_type=content_type)

    assert response.status_code == 202, response.content
    assert not Volume.objects.exists()  # the request only stored the files
    assert job_run(model=UploadJob, job_id=response.json()["id"], work=upload_job_work) == JobState.SUCCEEDED
    outcomes = {row["name"]: row for row in UploadJob.objects.get().results}
    assert outcomes["escaped.nii.gz"]["outcome"] == "stored"  # an uploaded name is never a path
    errors = {name: row["message"] for name, row in outcomes.items() if row["outcome"] == "error"}
    assert set(errors) == {"notes.nii", "scan.nii.gz", "bomb.zip", "evil.zip", "huge.nii.gz"}
    assert "zip bomb" in errors["bomb.zip"]
    assert "unsafe path" in errors["evil.zip"]
    assert "over the upload limit" in errors["huge.nii.gz"]
    # Each message names the file the admin uploaded, not the temporary copy it was read from.
    assert all(message.startswith(name) for name, message in errors.items()), errors

    volume = Volume.objects.get()
    assert Path(volume.file.path).resolve().is_relative_to(media_root.resolve())
    assert _files_outside(tmp_path, media_root) == before, "something was written outside the media folder"
    assert list(scratch.iterdir()) == [], "temporary files were left behind"
    assert not list(tmp_path.parent.glob("evil.txt")) and not Path("/tmp/evil.txt").exists()


# --- probing other roles' pages --------------------------------------------------------------------


@pytest.fixture
def targets(study, tmp_path) -> dict:
    """Real objects behind every probed URL, so a 403 is not a 404 in disguise."""
    [result] = volumes_ingest(
        dataset=dataset_get_or_create(name="probe"),
        files=[(write_nifti(tmp_path / "v.nii.gz", _smooth_volume(), (1.2, 1.2, 1.2)), "v.nii.gz")],
    )
    volume = result.volume
    png = io.BytesIO()
    Image.new("L", (4, 4)).save(png, format="PNG")
    volume.preview.save("p.png", ContentFile(png.getvalue()))
    job = TrainingJob.objects.create(dataset=volume.dataset, config={})
    other = _study("someone else's")
    return {"study": study, "other": other, "volume": volume, "job": job, "image": BankImage.objects.first()}


def _staff_paths(t: dict) -> list[str]:
    job, volume, study = t["job"].pk, t["volume"].pk, t["study"].pk
    return [
        "/admin/",
        "/admin/generator/volume/",
        "/admin/readerstudy/study/",
        f"/admin/readerstudy/study/{study}/change/",
        "/generator/bank/",
        f"/generator/bank/{t['image'].pk}.png",
        "/generator/training/",
        "/generator/training/new/",
        f"/generator/training/{job}/",
        f"/generator/training/{job}/samples.png",
        f"/generator/training/{job}/loss.png",
        f"/generator/training/{job}/generator.keras",
        f"/generator/volumes/{volume}/preview.png",
        "/api/v1/datasets/",
        "/api/v1/volumes/",
        f"/api/v1/volumes/{volume}/",
        "/api/v1/training-jobs/",
        f"/api/v1/training-jobs/{job}/",
        "/api/v1/bank-fills/",
        f"/reading/{study}/dry-run/",
        f"/api/v1/studies/{study}/dry-run/session",
    ]


def _assert_refused(response, path: str) -> None:
    if response.status_code == 302:
        assert "/login" in response["Location"], (path, response["Location"])
    else:
        assert response.status_code == 403, (path, response.status_code)


@pytest.mark.parametrize("role", ["readers", "researchers"])
def test_readers_and_researchers_probing_admin_bank_and_job_urls_are_refused(client, targets, role):
    client.force_login(UserFactory(role=role))
    for path in _staff_paths(targets):
        _assert_refused(client.get(path), path)
    job = targets["job"].pk
    for path, body in [
        ("/api/v1/training-jobs/", {"dataset": "probe"}),
        (f"/api/v1/training-jobs/{job}/cancel/", {}),
        ("/api/v1/bank-fills/", {}),
        ("/api/v1/datasets/", {"name": "mine"}),
        (f"/api/v1/studies/{targets['study'].pk}/open/", {}),
        (f"/generator/training/{job}/cancel/", {}),
    ]:
        _assert_refused(client.post(path, body), path)
    assert TrainingJob.objects.count() == 1 and not TrainingJob.objects.filter(cancel_requested=True).exists()


def test_a_reader_cannot_reach_other_studies_or_any_results(client, targets):
    user = _reader(targets["study"])
    client.force_login(user)
    other = targets["other"].pk
    for path in [
        f"/reading/{other}/",
        f"/reading/{other}/read",
        f"/reading/{other}/consent",
        f"/reading/{other}/thanks",
    ]:
        assert client.get(path).status_code == 404, path  # as for a study that does not exist
    assert client.get(f"/api/v1/me/session?study={other}").status_code == 403
    assert _post_call(client, targets["other"], {"token": "x", "call": "real"}).status_code == 403
    for study in (targets["study"].pk, other):
        for path in [
            "/results/",
            f"/results/{study}/",
            f"/results/{study}/accuracy.png",
            f"/api/v1/studies/{study}/",
            f"/api/v1/studies/{study}/results/table/",
            f"/api/v1/studies/{study}/results/calls/?format=csv",
            f"/api/v1/studies/{study}/results/bundle/",
            f"/api/v1/readers/?study={study}",
        ]:
            _assert_refused(client.get(path), path)
    _assert_refused(client.post(f"/results/{other}/machine-observer"), "machine-observer")


def test_a_researcher_cannot_read_or_see_a_readers_images(client, targets):
    client.force_login(_reader(targets["study"]))
    token = _state(client, targets["study"])["token"]
    client.force_login(UserFactory(role="researchers"))
    study = targets["study"].pk
    for path in [f"/reading/{study}/", f"/reading/{study}/read", f"/reading/image/{token}"]:
        _assert_refused(client.get(path), path)
    assert client.get(f"/api/v1/me/session?study={study}").status_code == 403


# --- passwords and cookies -------------------------------------------------------------------------


def test_djangos_password_validators_refuse_weak_passwords(settings):
    names = {validator["NAME"].rsplit(".", 1)[1] for validator in settings.AUTH_PASSWORD_VALIDATORS}
    assert names >= {
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    }
    user = UserFactory(username="margaret.hamilton")
    for weak in ["short1", "password123", "8675309112358", "margaret.hamilton"]:
        with pytest.raises(ValidationError):
            validate_password(weak, user=user)
    validate_password(PASSWORD, user=user)  # the invitation page refusing a weak one: test_readers.py


def test_the_login_sets_a_secure_httponly_session_cookie_behind_https(client, settings):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True  # what DJANGO_HTTPS=true sets
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    user = UserFactory(role="readers")
    response = client.post(
        "/accounts/login/", {"username": user.username, "password": PASSWORD}, HTTP_X_FORWARDED_PROTO="https"
    )
    assert response.status_code == 302
    cookie = response.cookies["sessionid"]
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Lax"
