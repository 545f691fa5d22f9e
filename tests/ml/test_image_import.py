"""Images made elsewhere: each format maps onto [−1, 1] by the one documented rule; bad files get a clear reason."""

import gzip
import hashlib

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from generator.ml.image_import import ImageImportError, file_sha256, load_external_image
from generator.ml.rendering import to_display_uint8


def ramp(dtype, top: int, size: int = 16) -> np.ndarray:
    """A 2D array holding 0 and ``top`` (the type's extremes) and values in between, row 0 first."""
    values = np.linspace(0, top, size * size).reshape(size, size)
    return np.round(values).astype(dtype)


def test_8bit_png_maps_0_to_minus_one_and_255_to_plus_one(tmp_path):
    stored = ramp(np.uint8, 255)
    Image.fromarray(stored).save(tmp_path / "a.png")
    imported = load_external_image(tmp_path / "a.png")
    assert imported.source_format == "png" and imported.original_dtype == "uint8"
    assert imported.pixels.dtype == np.float32 and imported.pixels.shape == (16, 16)
    assert imported.pixels[0, 0] == -1.0 and imported.pixels[-1, -1] == 1.0
    assert np.allclose(imported.pixels, stored / 127.5 - 1, atol=1e-6)
    assert imported.input_range == (0.0, 255.0)
    # Through the bank's renderer an 8-bit image keeps exactly its own pixel values.
    assert np.array_equal(to_display_uint8(imported.pixels), stored)


@pytest.mark.parametrize("file_format", ["png", "tiff"])
def test_16bit_png_and_tiff_map_the_full_uint16_range(tmp_path, file_format):
    stored = ramp(np.uint16, 65535)
    path = tmp_path / f"a.{file_format}"
    Image.fromarray(stored).save(path)
    imported = load_external_image(path)
    assert imported.source_format == file_format and imported.original_dtype == "uint16"
    assert imported.pixels[0, 0] == -1.0 and imported.pixels[-1, -1] == 1.0
    assert np.allclose(imported.pixels, stored / 32767.5 - 1, atol=1e-6)
    assert imported.input_range == (0.0, 65535.0)


def test_npy_floats_in_zero_to_one_and_in_minus_one_to_one(tmp_path):
    unit = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    np.save(tmp_path / "unit.npy", unit)
    imported = load_external_image(tmp_path / "unit.npy")
    assert imported.input_range == (0.0, 1.0) and imported.source_format == "npy"
    assert imported.pixels[0, 0] == -1.0 and imported.pixels[-1, -1] == 1.0
    assert np.allclose(imported.pixels, unit * 2 - 1, atol=1e-6)

    symmetric = np.linspace(-1, 1, 64).reshape(8, 8)  # float64 is fine too
    np.save(tmp_path / "symmetric.npy", symmetric)
    imported = load_external_image(tmp_path / "symmetric.npy")
    assert imported.input_range == (-1.0, 1.0) and imported.original_dtype == "float64"
    assert np.allclose(imported.pixels, symmetric, atol=1e-6)

    # Stated rather than inferred: a [−1, 1] image that happens to have no negative pixel.
    imported = load_external_image(tmp_path / "unit.npy", float_range="minus_one_to_one")
    assert np.allclose(imported.pixels, unit, atol=1e-6)


def test_npy_with_singleton_axes_and_32bit_float_tiff(tmp_path):
    np.save(tmp_path / "batch_of_one.npy", ramp(np.uint8, 255)[None, :, :, None])
    imported = load_external_image(tmp_path / "batch_of_one.npy")
    assert imported.pixels.shape == (16, 16) and imported.original_shape == (1, 16, 16, 1)
    Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)).save(tmp_path / "float.tiff")
    imported = load_external_image(tmp_path / "float.tiff")
    assert imported.input_range == (0.0, 1.0) and imported.pixels.max() == 1.0


@pytest.mark.parametrize("name", ["slice.nii", "slice.nii.gz", "upload_without_extension"])
@pytest.mark.parametrize(("dtype", "top"), [(np.uint8, 255), (np.uint16, 65535)])
def test_2d_nifti_with_a_singleton_third_axis(tmp_path, name, dtype, top):
    stored = ramp(dtype, top)
    stored[0, 1] = 0  # orientation: the stored array's first axis is the image's rows
    image = nib.Nifti1Image(stored[:, :, None], np.diag([0.9, 0.9, 1.0, 1.0]))
    image.header.set_data_dtype(dtype)
    data = image.to_bytes()
    (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    imported = load_external_image(tmp_path / name)
    assert imported.source_format == "nifti" and imported.original_shape == (16, 16, 1)
    assert imported.original_dtype == np.dtype(dtype).name
    assert imported.pixels[0, 0] == -1.0 and imported.pixels[-1, -1] == 1.0 and imported.pixels[0, 1] == -1.0
    assert np.allclose(imported.pixels, stored / (top / 2) - 1, atol=1e-6)


def test_rgb_with_equal_channels_is_grayscale_but_colour_is_refused(tmp_path):
    gray = ramp(np.uint8, 255)
    Image.fromarray(np.stack([gray] * 3, axis=-1)).save(tmp_path / "gray_rgb.png")
    assert np.array_equal(load_external_image(tmp_path / "gray_rgb.png").pixels, gray / np.float32(127.5) - 1)
    colour = np.stack([gray, gray, 255 - gray], axis=-1)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    with pytest.raises(ImageImportError, match="colour image"):
        load_external_image(tmp_path / "colour.png")


def error_for(path, **options) -> str:
    with pytest.raises(ImageImportError) as caught:
        load_external_image(path, **options)
    return str(caught.value)


def test_broken_empty_and_unsupported_files_are_refused_with_their_reason(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    assert "broken.png is not a readable image" in error_for(tmp_path / "broken.png")
    (tmp_path / "notes.txt").write_text("not an image at all")
    assert "is not an image file" in error_for(tmp_path / "notes.txt")
    (tmp_path / "empty.png").write_bytes(b"")
    assert "is empty" in error_for(tmp_path / "empty.png")
    Image.fromarray(ramp(np.uint8, 255)).save(tmp_path / "photo.jpg")
    assert "JPEG" in error_for(tmp_path / "photo.jpg")
    (tmp_path / "truncated.npy").write_bytes(b"\x93NUMPY\x01\x00")
    assert "not a readable NumPy array" in error_for(tmp_path / "truncated.npy")
    assert "cannot be read" in error_for(tmp_path / "missing.png")


def test_3d_data_nan_values_and_unknown_scales_are_refused(tmp_path):
    np.save(tmp_path / "volume.npy", np.zeros((4, 16, 16), np.float32))
    assert "3D data of shape (4, 16, 16)" in error_for(tmp_path / "volume.npy")
    frames = [Image.fromarray(ramp(np.uint8, 255)) for _ in range(3)]
    frames[0].save(tmp_path / "stack.tiff", save_all=True, append_images=frames[1:])
    assert "3 frames" in error_for(tmp_path / "stack.tiff")
    with_nan = np.zeros((16, 16), np.float32)
    with_nan[3, 4] = np.nan
    np.save(tmp_path / "nan.npy", with_nan)
    assert "1 non-finite values" in error_for(tmp_path / "nan.npy")
    np.save(tmp_path / "hounsfield.npy", np.linspace(-1000, 3000, 256).reshape(16, 16))
    message = error_for(tmp_path / "hounsfield.npy")
    assert "outside [−1, 1] or [0, 1]" in message and "8- or 16-bit" in message
    np.save(tmp_path / "int16.npy", ramp(np.int16, 4000))
    assert "scale is unknown" in error_for(tmp_path / "int16.npy")
    np.save(tmp_path / "empty.npy", np.zeros((0, 16), np.float32))
    assert "holds no pixels" in error_for(tmp_path / "empty.npy")


def test_a_wrong_size_is_refused_with_the_size_found_and_expected(tmp_path):
    Image.fromarray(ramp(np.uint8, 255, size=32)).save(tmp_path / "small.png")
    assert load_external_image(tmp_path / "small.png", expected_size=32).pixels.shape == (32, 32)
    message = error_for(tmp_path / "small.png", expected_size=64)
    assert "32×32 pixels" in message and "64×64" in message and "does not resample" in message


def test_file_sha256_is_the_hash_of_the_bytes(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.arange(10))
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
