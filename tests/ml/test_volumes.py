"""Loading T1-weighted volumes: NIfTI, DICOM folders and zips, each bad upload with its own message."""

import locale
import pickle
import shutil
import tempfile
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from generator.ml import volumes
from generator.ml.patients import patient_key
from generator.ml.volumes import LoadedVolume, VolumeError, file_checksum, load_volume
from tests.factories import AXIAL, PATIENT_TAGS, write_dicom_series

SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # rows to posterior, columns to inferior


def brain_like(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(50, 150, size=shape).astype(np.float32)


def save_nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0]) if affine is None else affine), path)
    return path


def marked_series(shape: tuple[int, int, int] = (40, 50, 30), marker: tuple[int, int, int] = (10, 20, 5)):
    array = np.full(shape, 100, dtype=np.int16)
    array[marker] = 1000
    return array


def zip_folder(folder: Path, archive: Path, prefix: str = "export/") -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zip_file:
        for file in sorted(folder.rglob("*")):
            zip_file.write(file, prefix + file.relative_to(folder).as_posix())
    return archive


def assert_refused(path: Path, *key_words: str, **kwargs) -> str:
    with pytest.raises(VolumeError) as raised:
        load_volume(path, **kwargs)
    message = str(raised.value)
    for word in key_words:
        assert word.lower() in message.lower(), f"{word!r} missing from: {message}"
    return message


# --- good NIfTI ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["t1.nii", "t1.nii.gz"])
def test_nifti_loads_in_canonical_ras_orientation(tmp_path, name):
    data = brain_like((60, 70, 50))
    # Stored left-to-right flipped (LAS), as many scanners write: x runs to the patient's left.
    affine = np.array([[-2.0, 0, 0, 90], [0, 2.5, 0, -120], [0, 0, 3.0, -60], [0, 0, 0, 1]])
    save_nifti(tmp_path / name, data, affine)

    volume = load_volume(tmp_path / name)

    assert volume.source_format == "nifti"
    assert volume.shape == (60, 70, 50)
    assert volume.data.dtype == np.float32
    assert volume.voxel_size_mm == pytest.approx((2.0, 2.5, 3.0))
    assert np.all(np.diag(volume.affine)[:3] > 0), "canonical RAS+: every axis increases toward R, A, S"
    # The voxel stored at (3, 4, 5) keeps its world position.
    world = affine @ [3, 4, 5, 1]
    index = np.round(np.linalg.inv(volume.affine) @ world).astype(int)[:3]
    assert volume.data[tuple(index)] == pytest.approx(data[3, 4, 5])


def test_a_trailing_axis_of_length_one_is_still_3d(tmp_path):
    volume = load_volume(save_nifti(tmp_path / "t1.nii.gz", brain_like((60, 60, 60, 1))))
    assert volume.shape == (60, 60, 60)


# --- bad NIfTI -----------------------------------------------------------------------------------


def test_text_file_renamed_nii_is_not_an_image(tmp_path):
    path = tmp_path / "notes.nii"
    path.write_text("Patient notes, not an image.\n" * 40)
    assert_refused(path, "not a NIfTI image")


def test_text_file_renamed_nii_gz_is_not_gzip(tmp_path):
    path = tmp_path / "notes.nii.gz"
    path.write_text("Patient notes, not an image.\n" * 40)
    assert_refused(path, "not gzip-compressed")


@pytest.mark.parametrize("damage", ["truncated", "garbled"])
def test_corrupt_gzip_is_reported(tmp_path, damage):
    good = save_nifti(tmp_path / "good.nii.gz", brain_like((60, 60, 60))).read_bytes()
    if damage == "truncated":
        bad = good[: len(good) // 2]
    else:
        bad = good[:200] + bytes(255 - b for b in good[200:400]) + good[400:]
    path = tmp_path / "t1.nii.gz"
    path.write_bytes(bad)
    assert_refused(path, "damaged gzip")


def test_truncated_nii_is_damaged(tmp_path):
    good = save_nifti(tmp_path / "good.nii", brain_like((60, 60, 60))).read_bytes()
    path = tmp_path / "t1.nii"
    path.write_bytes(good[:2000])
    assert_refused(path, "damaged NIfTI")


@pytest.mark.parametrize("shape", [(128, 128), (128, 128, 1)])
def test_2d_image_is_refused(tmp_path, shape):
    assert_refused(save_nifti(tmp_path / "slice.nii.gz", brain_like(shape)), "2D image", "128×128", "3D")


def test_4d_series_is_refused_with_its_volume_count(tmp_path):
    path = save_nifti(tmp_path / "fmri.nii.gz", brain_like((60, 60, 60, 5)))
    assert_refused(path, "4D", "5 volumes", "one 3D T1-weighted volume")


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(tmp_path, bad_value):
    data = brain_like((60, 60, 60))
    data[10:12, 10, 10] = bad_value
    assert_refused(save_nifti(tmp_path / "t1.nii.gz", data), "2 voxels", "NaN or infinite")


@pytest.mark.parametrize(
    ("voxel_mm", "shown"), [((0.05, 1.0, 1.0), "0.05×1×1"), ((1.0, 1.0, 12.0), "1×1×12"), ((1.0, 1.0, 0.0), "1×1×0")]
)
def test_absurd_voxel_sizes_are_refused(tmp_path, voxel_mm, shown):
    if all(voxel_mm):
        image = nib.Nifti1Image(brain_like((200, 200, 200)), np.diag([*voxel_mm, 1.0]))
    else:  # a header with no sform or qform and a zero pixdim: the affine comes from pixdim alone
        image = nib.Nifti1Image(brain_like((200, 200, 200)), None)
        image.header.set_zooms(voxel_mm)
    path = tmp_path / "t1.nii.gz"
    nib.save(image, path)
    assert_refused(path, "voxel size", shown, "mm")


def test_field_of_view_too_small_for_a_brain(tmp_path):
    path = save_nifti(tmp_path / "slab.nii.gz", brain_like((120, 120, 20)), np.diag([1.0, 1.0, 2.0, 1.0]))
    message = assert_refused(path, "covers only", "120×120×40 mm", "at least 100 mm")
    assert str(int(volumes.MIN_FIELD_OF_VIEW_MM)) in message


def test_constant_image_is_refused(tmp_path):
    assert_refused(save_nifti(tmp_path / "t1.nii.gz", np.zeros((60, 60, 60), np.float32)), "holds no image")


def test_upload_over_the_size_limit_is_refused(tmp_path):
    path = save_nifti(tmp_path / "t1.nii", brain_like((60, 60, 60)))
    assert_refused(path, "over the upload limit", "0.5 MB", max_bytes=500_000)
    assert load_volume(path, max_bytes=10_000_000).shape == (60, 60, 60)


def test_folder_over_the_size_limit_is_refused(tmp_path):
    folder = write_dicom_series(tmp_path / "series", marked_series())
    assert_refused(folder, "over the upload limit", max_bytes=10_000)


@pytest.mark.parametrize("name", ["t1.mgz", "t1.img", "t1.txt"])
def test_unsupported_formats_are_named(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\0" * 100)
    assert_refused(path, "not a supported format", ".nii.gz", "DICOM")


def test_missing_file_is_reported(tmp_path):
    assert_refused(tmp_path / "gone.nii.gz", "does not exist")


# --- DICOM ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", [AXIAL, SAGITTAL], ids=["axial", "sagittal"])
def test_dicom_series_loads_with_ras_geometry(tmp_path, orientation):
    marker = (10, 20, 5)
    folder = write_dicom_series(tmp_path / "series", marked_series(marker=marker), orientation=orientation)

    volume = load_volume(folder)

    assert volume.source_format == "dicom"
    assert sorted(volume.shape) == [30, 40, 50]
    assert sorted(volume.voxel_size_mm) == pytest.approx([3.0, 4.0, 5.0])
    assert np.all(np.diag(volume.affine)[:3] > 0)
    # Where the scanner put the marker, in LPS: origin + column·4 mm along rows + row·3 mm + slice·5 mm.
    row, column = np.array(orientation[:3]), np.array(orientation[3:])
    marker_lps = np.array([-100.0, -120.0, -60.0]) + 10 * 4 * row + 20 * 3 * column + 5 * 5 * np.cross(row, column)
    marker_ras = marker_lps * [-1, -1, 1]
    found = np.unravel_index(np.argmax(volume.data), volume.shape)
    assert volume.data[found] == 1000
    assert (volume.affine @ [*found, 1])[:3] == pytest.approx(marker_ras)


def test_dicom_patient_data_is_not_kept(tmp_path):
    volume = load_volume(write_dicom_series(tmp_path / "series", marked_series()), patient_secret=b"key")

    assert {field for field in vars(volume)} == {"data", "affine", "voxel_size_mm", "source_format", "patient_key"}
    assert volume.patient_key == patient_key(PATIENT_TAGS["0010|0020"], secret=b"key")  # a keyed hash, not the ID
    kept = pickle.dumps(volume)
    for value in [*PATIENT_TAGS.values(), "T1 MPRAGE", "1.2.826.0.1.3680043"]:
        assert value.encode() not in kept, f"{value} kept in the loaded volume"


def test_zip_of_a_dicom_series_loads(tmp_path):
    folder = write_dicom_series(tmp_path / "series", marked_series())
    volume = load_volume(zip_folder(folder, tmp_path / "series.zip"))
    assert volume.source_format == "dicom"
    assert volume.shape == load_volume(folder).shape


def test_several_series_are_named_and_refused(tmp_path):
    folder = tmp_path / "study"
    write_dicom_series(folder / "a", marked_series(), series_number=3, description="T1 MPRAGE")
    write_dicom_series(
        folder / "b", marked_series((40, 50, 24)), series_uid="1.2.3.9", series_number=7, description="FLAIR"
    )
    for upload in (folder, zip_folder(folder, tmp_path / "study.zip")):
        message = assert_refused(upload, "2 DICOM series", "one series")
        assert "series 3 'T1 MPRAGE' (30 images)" in message
        assert "series 7 'FLAIR' (24 images)" in message


def test_empty_folder_has_no_dicom(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_refused(tmp_path / "empty", "no DICOM images", "0 files")


def test_zip_without_dicom_is_refused(tmp_path):
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zip_file:
        zip_file.writestr("readme.txt", "no images here")
    assert_refused(archive, "no DICOM images", "1 files")


def test_dicom_series_of_two_volumes_is_4d(tmp_path):
    # Two volumes of 30 slices each at the same 30 positions, in one series (e.g. two echoes).
    folder = write_dicom_series(tmp_path / "series", marked_series(), positions=list(range(30)) * 2)
    assert_refused(folder, "4D", "2 volumes", "One 3D T1-weighted volume")


def test_dicom_series_with_a_missing_slice_is_refused(tmp_path):
    folder = write_dicom_series(tmp_path / "series", marked_series(), positions=[*range(15), *range(16, 30)])
    assert_refused(folder, "missing or unevenly spaced")


def test_single_dicom_slice_is_2d(tmp_path):
    folder = write_dicom_series(tmp_path / "series", marked_series((40, 50, 1), marker=(1, 1, 0)))
    assert_refused(folder, "2D image", "40×50")
    assert_refused(next(folder.iterdir()), "single DICOM file", "whole series")


# --- zip safety ----------------------------------------------------------------------------------


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    """The folder temporary directories are made in, so a test can see what was left there."""
    folder = tmp_path / "a" / "scratch"
    folder.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.mark.parametrize("evil_name", ["../evil.txt", "../../evil.txt", "/tmp/evil.txt", "ok/../../evil.txt"])
def test_zip_with_path_traversal_is_refused_and_writes_nothing(tmp_path, scratch, evil_name):
    folder = write_dicom_series(tmp_path / "series", marked_series())
    archive = zip_folder(folder, tmp_path / "upload.zip")
    with zipfile.ZipFile(archive, "a") as zip_file:
        zip_file.writestr(zipfile.ZipInfo(evil_name), "pwned")

    assert_refused(archive, "unsafe path", evil_name)

    assert not list(tmp_path.rglob("evil.txt"))
    assert not Path("/tmp/evil.txt").exists()
    assert list(scratch.iterdir()) == [], "the temporary folder is removed"


def test_zip_bomb_is_refused_by_compression_ratio(tmp_path, scratch):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zip_file:
        zip_file.writestr("IM0001.dcm", b"\0" * 50_000_000)
    assert_refused(archive, "zip bomb")
    assert list(scratch.iterdir()) == []


def test_zip_bomb_is_refused_by_total_size(tmp_path, monkeypatch):
    folder = write_dicom_series(tmp_path / "series", marked_series())
    archive = zip_folder(folder, tmp_path / "upload.zip")
    monkeypatch.setattr(volumes, "MAX_ZIP_UNCOMPRESSED_BYTES", 10_000)
    assert_refused(archive, "would unpack to", "zip bomb")


def test_damaged_zip_is_refused(tmp_path):
    path = tmp_path / "upload.zip"
    path.write_bytes(b"PK\x03\x04 this is not really a zip")
    assert_refused(path, "not a valid zip archive")


# --- checksums -----------------------------------------------------------------------------------


def test_checksum_recognises_the_same_file(tmp_path):
    first = save_nifti(tmp_path / "t1.nii.gz", brain_like((20, 20, 20)))
    copy = shutil.copy(first, tmp_path / "copy.nii.gz")
    assert file_checksum(first) == file_checksum(Path(copy))
    assert len(file_checksum(first)) == 64
    assert file_checksum(first) != file_checksum(save_nifti(tmp_path / "other.nii.gz", brain_like((20, 20, 20), 1)))


def test_folder_checksum_is_stable_and_sees_names_and_bytes(tmp_path):
    folder = write_dicom_series(tmp_path / "series", marked_series())
    copy = Path(shutil.copytree(folder, tmp_path / "copy"))
    assert file_checksum(folder) == file_checksum(copy)

    first = sorted(copy.iterdir())[0]
    first.rename(copy / "renamed.dcm")
    assert file_checksum(copy) != file_checksum(folder)

    changed = Path(shutil.copytree(folder, tmp_path / "changed"))
    last = sorted(changed.iterdir())[-1]
    last.write_bytes(last.read_bytes()[:-1] + b"\x01")
    assert file_checksum(changed) != file_checksum(folder)


def test_loaded_volume_shape_and_error_type():
    volume = LoadedVolume(np.zeros((2, 3, 4), np.float32), np.eye(4), (1.0, 1.0, 1.0), "nifti")
    assert volume.shape == (2, 3, 4)
    assert issubclass(VolumeError, ValueError)


def test_writing_a_dicom_series_keeps_the_process_locale(tmp_path):
    before = locale.setlocale(locale.LC_ALL)
    write_dicom_series(tmp_path / "series", np.zeros((8, 8, 3), np.int16))
    assert locale.setlocale(locale.LC_ALL) == before


def test_a_volume_over_the_voxel_limit_is_refused_from_its_headers_before_any_pixel_is_decoded(tmp_path, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("pixels were decoded")

    series = write_dicom_series(tmp_path / "series", marked_series())  # 40 × 50 × 30 voxels
    nifti = save_nifti(tmp_path / "big.nii.gz", brain_like((60, 60, 60)))
    monkeypatch.setattr(volumes.sitk, "ImageSeriesReader", no_decoding)
    monkeypatch.setattr(nib.Nifti1Image, "get_fdata", no_decoding)
    dicom_refusal = r"60,000 voxels \(50×40 × 1 frame\(s\) × 30 files\), over the limit of 50,000"
    with pytest.raises(VolumeError, match=dicom_refusal):
        load_volume(series, max_voxels=50_000)
    nifti_refusal = r"216,000 voxels \(60×60×60\), over the limit of 200,000 \(VOLUME_MAX_VOXELS\)"
    with pytest.raises(VolumeError, match=nifti_refusal):
        load_volume(nifti, max_voxels=200_000)
    monkeypatch.undo()
    assert load_volume(series, max_voxels=60_000).shape == (40, 50, 30)  # at the limit: read as before
    assert load_volume(nifti, max_voxels=216_000).shape == (60, 60, 60)
