"""The image bank: filled from a training job by a real worker (screened, rendered alike),
images from any generator imported, evidence frozen, and admins only."""

import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from PIL import Image

from generator.bank import bank_image_store
from generator.bank_import import images_import
from generator.ml.rendering import rendered_length
from generator.models import BankImage
from readerstudy.core.errors import EvidenceFrozen
from tests.factories import UserFactory


def _png(path, pixels: np.ndarray, mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.django_db
def test_images_from_any_generator_import_with_provenance_and_bad_files_are_reported(tmp_path):
    rng = np.random.default_rng(0)
    png8 = tmp_path / "a.png"
    png8.write_bytes(_png(png8, rng.integers(0, 256, (64, 64), dtype=np.uint8), "L"))
    npy = tmp_path / "b.npy"
    np.save(npy, rng.uniform(-1, 1, (64, 64)).astype(np.float32))
    broken = tmp_path / "c.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    results = images_import(
        files=[(p, p.name) for p in (png8, npy, broken)],
        generator_name="their-diffusion",
        image_class="synthetic",
        note="run 7",
        expected_size=64,
    )
    assert [r.ok for r in results] == [True, True, False]
    assert results[2].message
    images = BankImage.objects.order_by("pk")
    assert images.count() == 2
    assert {(i.generator_name, i.note, i.status, i.image_class) for i in images} == {
        ("their-diffusion", "run 7", "active", "synthetic")
    }
    assert all(len(i.external_checksum) == 64 for i in images)
    assert {len(i.file.open("rb").read()) for i in images} == {rendered_length(64)}


@pytest.mark.django_db
def test_import_images_command_keeps_good_files_and_fails_loudly(tmp_path, capsys):
    good = tmp_path / "slice.npy"
    np.save(good, np.zeros((64, 64), np.float32))
    bad = tmp_path / "volume.npy"
    np.save(bad, np.zeros((4, 64, 64), np.float32))
    with pytest.raises(CommandError, match="need their subject"):
        call_command("import_images", str(good), "--generator", "theirs", "--class", "real")
    assert not BankImage.objects.exists()
    with pytest.raises(CommandError, match="1 file"):
        call_command(
            "import_images", str(good), str(bad), "--generator", "theirs", "--class", "real", "--subject", "pat-9"
        )
    assert "imported" in capsys.readouterr().out
    image = BankImage.objects.get()
    assert (image.image_class, image.subject.label) == ("real", "pat-9")


@pytest.mark.django_db
def test_real_images_of_several_people_take_a_manifest(tmp_path):
    files = []
    for name in ("a.npy", "b.npy", "c.npy"):
        np.save(tmp_path / name, np.random.default_rng(len(files)).uniform(-1, 1, (32, 32)).astype(np.float32))
        files.append(tmp_path / name)
    manifest = tmp_path / "subjects.csv"
    manifest.write_text("file,subject\nscans/a.npy,pat-1\nb.npy,pat-1\nc.npy,pat-2\n")
    call_command(
        "import_images",
        *map(str, files),
        "--generator",
        "their-hospital",
        "--class",
        "real",
        "--manifest",
        str(manifest),
    )
    by_file = {image.external_checksum: image.subject.label for image in BankImage.objects.select_related("subject")}
    assert sorted(by_file.values()) == ["pat-1", "pat-1", "pat-2"]
    manifest.write_text("file,subject\na.npy,pat-1\n")
    with pytest.raises(CommandError, match=r"none given for b\.npy, c\.npy"):
        call_command(
            "import_images", *map(str, files), "--generator", "x", "--class", "real", "--manifest", str(manifest)
        )
    with pytest.raises(CommandError, match="Synthetic images show no person"):
        call_command("import_images", str(files[0]), "--generator", "x", "--class", "synthetic", "--subject", "p")


@pytest.mark.django_db
def test_an_image_shown_to_a_reader_is_evidence(tmp_path):
    image = bank_image_store(pixels=np.zeros((64, 64), np.float32), image_class="real", generator_name="x")
    image.note = "editable before it is shown"
    image.save()
    image.first_shown_at = timezone.now()
    image.save()
    image.note = "changed after"
    with pytest.raises(EvidenceFrozen):
        image.save()
    image.refresh_from_db()
    image.status, image.exclusion_reason = "excluded", "artefact"
    image.save()  # excluding stays possible
    with pytest.raises(EvidenceFrozen):
        image.delete()
    assert BankImage.objects.filter(pk=image.pk, status="excluded").exists()


@pytest.mark.django_db
def test_non_admins_get_403_on_the_bank(client, tmp_path):
    image = bank_image_store(pixels=np.zeros((64, 64), np.float32), image_class="real", generator_name="x")
    for role in ("readers", "researchers"):
        client.force_login(UserFactory(role=role))
        assert client.get("/generator/bank/").status_code == 403
        assert client.get(f"/generator/bank/{image.pk}.png").status_code == 403
        assert client.post("/generator/bank/", {"generator_name": "x"}).status_code == 403
        assert client.post("/generator/training/1/fill/", {"synthetic_count": 1}).status_code == 403
        assert client.get("/api/v1/bank-fills/").status_code == 403
    client.force_login(UserFactory(role="admins"))
    page = client.get("/generator/bank/?image_class=real")
    assert page.status_code == 200 and f"/generator/bank/{image.pk}.png".encode() in page.content
    assert client.get(f"/generator/bank/{image.pk}.png")["Cache-Control"] == "private, no-store"
