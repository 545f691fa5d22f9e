"""The blinding audit (DESIGN.md, "Blinding"): record everything a reader's browser receives over
whole sessions (pages, JSON, image bytes, headers, response times) and show that nothing tells
the classes apart; and the access rules around it."""

import json
import re
import time

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score

from generator.bank import bank_image_store
from generator.models import BankImage
from readerstudy.reading.models import Reader, Study, Trial
from readerstudy.reading.pools import study_set_pools
from readerstudy.reading.sessions import study_open
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SIZE = 64
READERS = 4


def _real_like(rng) -> np.ndarray:
    """Smooth, brain-like blobs: compresses very differently from GAN-like noise."""
    y, x = np.mgrid[-1 : 1 : SIZE * 1j, -1 : 1 : SIZE * 1j]
    centre = rng.uniform(-0.2, 0.2, 2)
    return np.clip(1.6 * np.exp(-((x - centre[0]) ** 2 + (y - centre[1]) ** 2) * 3) - 0.9, -1, 1).astype(np.float32)


def _synthetic_like(rng) -> np.ndarray:
    return rng.uniform(-1, 1, (SIZE, SIZE)).astype(np.float32)


@pytest.fixture
def study():
    rng = np.random.default_rng(3)

    def bank(count, image_class):
        make = _real_like if image_class == "real" else _synthetic_like
        return [
            bank_image_store(pixels=make(rng), image_class=image_class, generator_name="audit") for _ in range(count)
        ]

    study = Study.objects.create(
        name="audit", images_per_session=20, synthetic_min=8, synthetic_max=12, training_images=4
    )
    study_set_pools(
        study=study,
        main_pool=bank(20, "real") + bank(20, "synthetic"),
        training_pool=bank(2, "real") + bank(2, "synthetic"),
    )
    return study_open(study=study)


def _read_session(client, study, user) -> list[dict]:
    """A reader's whole session as their browser sees it; returns one record per trial."""
    client.force_login(user)
    pages = [client.get(path).content.decode() for path in (f"/reading/{study.pk}/", f"/reading/{study.pk}/read")]
    viewing = {"screen_width_px": 1920, "screen_height_px": 1080, "window_width_px": 1200, "window_height_px": 900}
    client.post(  # the display check, as the reading page sends it before the first image
        f"/api/v1/me/viewing?study={study.pk}",
        viewing | {"device_pixel_ratio": 1.0, "display_check": "both_seen"},
        content_type="application/json",
    )
    records = []
    while True:
        state_response = client.get(f"/api/v1/me/session?study={study.pk}")
        state = state_response.json()
        if state["phase"] == "finished":
            break
        started = time.perf_counter()
        image = client.get(state["image_url"])
        elapsed = time.perf_counter() - started
        call = client.post(
            f"/api/v1/me/calls?study={study.pk}",
            {"token": state["token"], "call": "real", "scale_factor": 8, "full_screen": False},
            content_type="application/json",
        )
        trial = Trial.objects.select_related("bank_image").get(token=state["token"])
        records.append(
            {
                "truth": trial.bank_image.image_class,
                "phase": state["phase"],
                "bank_image": trial.bank_image,
                "state_text": state_response.content.decode(),
                "state_headers": {k: v for k, v in state_response.items() if k != "Date"},
                "image_headers": {k: v for k, v in image.items() if k != "Date"},
                "image_length": len(image.content),
                "elapsed": elapsed,
                "call_body": call.json(),
            }
        )
    pages.append(client.get(f"/reading/{study.pk}/thanks").content.decode())
    records[0]["pages"] = pages
    return records


@pytest.fixture
def audit(client, study) -> list[dict]:
    records = []
    for _ in range(READERS):
        user = UserFactory(role="readers")
        Reader.objects.create(user=user, study=study)
        records += _read_session(client, study, user)
    return records


def test_no_reader_facing_response_names_a_class_a_bank_id_or_a_source(audit):
    pages = " ".join(audit[0]["pages"])
    for record in audit:
        image: BankImage = record["bank_image"]
        secrets_of_the_image = [image.storage_key, image.file.name, image.pixel_checksum, "audit"]
        texts = [record["state_text"], json.dumps(record["state_headers"]), json.dumps(record["image_headers"])]
        for text in texts:
            for secret in secrets_of_the_image:
                assert secret not in text
            assert not re.search(r"\b(real|synthetic|bank|provenance|generator)\b", text, re.IGNORECASE)
        assert image.storage_key not in pages and f"/bank/{image.pk}" not in pages
        state = json.loads(record["state_text"])
        assert set(state) == {
            *("study", "phase", "index", "total", "time_limit_s", "remaining_s", "token", "image_url"),
            "display_check_needed",
        }
        assert state["image_url"] == f"/reading/image/{state['token']}"  # the token is its only name
        if record["phase"] == "main":
            assert record["call_body"]["truth"] is None  # feedback in training only


def test_headers_and_byte_lengths_are_identical_for_both_classes(audit):
    by_class = {"real": [], "synthetic": []}
    for record in audit:
        by_class[record["truth"]].append(record)
    header_sets = {
        truth: {json.dumps(sorted(r["image_headers"].items())) for r in records} for truth, records in by_class.items()
    }
    assert header_sets["real"] == header_sets["synthetic"] and len(header_sets["real"]) == 1
    headers = {name.lower(): value for name, value in audit[0]["image_headers"].items()}
    assert "etag" not in headers and "last-modified" not in headers and headers["cache-control"] == "no-store"
    lengths = {truth: {r["image_length"] for r in records} for truth, records in by_class.items()}
    assert lengths["real"] == lengths["synthetic"] and len(lengths["real"]) == 1
    # The state's length varies with its index digits, not with the class; every other header is one.
    state_headers = {
        json.dumps(sorted(r["state_headers"].items() - {("Content-Length", r["state_headers"]["Content-Length"])}))
        for r in audit
    }
    assert len(state_headers) == 1


def _classifier_accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    return float(np.mean(cross_val_score(LogisticRegression(), features, labels, cv=folds)))


def test_a_classifier_on_length_headers_and_timing_does_no_better_than_chance(audit):
    from readerstudy.reading import images

    # The timing is the cache's (issue #24): images come from storage once, then from memory.
    assert all(images._cache.get(record["bank_image"].file.name) for record in audit)
    labels = np.array([record["truth"] == "real" for record in audit])
    features = np.array(
        [
            [record["image_length"], hash(json.dumps(sorted(record["image_headers"].items()))) % 997, record["elapsed"]]
            for record in audit
        ]
    )
    features = (features - features.mean(0)) / (features.std(0) + 1e-12)
    majority = max(labels.mean(), 1 - labels.mean())
    # 96 trials: the standard error of an accuracy near 0.5 is about 0.05; allow three of them.
    assert _classifier_accuracy(features, labels) <= majority + 0.15
    # The audit has power: the same classifier finds a leak as small as 16 bytes at once.
    leaky = features.copy()
    leaky[:, 0] = np.where(labels, 4228, 4244)
    assert _classifier_accuracy(leaky, labels) > 0.95


def test_readers_cannot_reach_admin_bank_results_lists_or_other_studies(client, study):
    user = UserFactory(role="readers")
    Reader.objects.create(user=user, study=study)
    other = Study.objects.create(name="other study")
    client.force_login(user)
    for path in [
        "/admin/",
        "/generator/bank/",
        "/generator/training/",
        "/results/",
        "/api/v1/studies/",
        "/api/v1/readers/",
        "/api/v1/volumes/",
        f"/reading/{study.pk}/dry-run/",
    ]:
        response = client.get(path)
        assert response.status_code in (302, 403), path
        assert response.status_code == 403 or "/login" in response["Location"], path
    assert client.get(f"/reading/{other.pk}/").status_code == 404
    assert client.get(f"/api/v1/me/session?study={other.pk}").status_code == 403
    assert client.get(f"/api/v1/studies/{study.pk}/dry-run/session").status_code == 403


def test_anonymous_users_reach_no_reading_page_or_image(client, study):
    user = UserFactory(role="readers")
    Reader.objects.create(user=user, study=study)
    client.force_login(user)
    token = client.get(f"/api/v1/me/session?study={study.pk}").json()["token"]
    client.logout()
    for path in [f"/reading/{study.pk}/", f"/reading/{study.pk}/read", f"/reading/image/{token}"]:
        response = client.get(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert client.get(f"/api/v1/me/session?study={study.pk}").status_code == 403
