"""The one rendering function: fixed 8-bit mapping, fixed-length chunk-free PNGs, equal pixels → equal files."""

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from generator.ml.rendering import (
    pixel_checksum,
    png_chunks,
    render_png,
    rendered_length,
    to_display_uint8,
)


def brain_like(size: int) -> np.ndarray:
    """A dark frame around a textured bright ellipse with two dark 'ventricles': what a slice looks like."""
    rows, columns = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    texture = np.random.default_rng(3).normal(0, 0.08, (size, size))
    image = np.where((rows / 0.85) ** 2 + (columns / 0.7) ** 2 < 1, 0.35 + texture, -1.0)
    for side in (-0.12, 0.12):
        image = np.where(((rows + 0.05) / 0.25) ** 2 + ((columns - side) / 0.07) ** 2 < 1, -0.55, image)
    return image.astype(np.float32)


def image_kinds(size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "noise": rng.uniform(-1, 1, (size, size)).astype(np.float32),
        "black": np.full((size, size), -1.0, dtype=np.float32),
        "gradient": np.tile(np.linspace(-1, 1, size, dtype=np.float32), (size, 1)),
        "brain": brain_like(size),
    }


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "L"
        return np.asarray(image)


def test_the_same_array_always_renders_to_the_same_bytes():
    image = brain_like(64)
    assert render_png(image) == render_png(image.copy()) == render_png(image)


def test_a_real_and_a_synthetic_array_of_equal_pixels_render_to_identical_files():
    real = brain_like(64)  # float32, as slices arrive from the slicer
    synthetic = np.asfortranarray(real.astype(np.float64))  # another dtype and memory layout, same values
    assert render_png(real) == render_png(synthetic)
    assert render_png(real, display_size=256) == render_png(synthetic, display_size=256)


@pytest.mark.parametrize(("size", "display_size"), [(64, None), (128, None), (256, None), (64, 256), (128, 512)])
def test_every_rendered_png_of_a_size_has_one_length_and_only_critical_chunks(size, display_size):
    images = image_kinds(size)
    files = {kind: render_png(image, display_size=display_size) for kind, image in images.items()}
    shown = display_size or size
    assert {len(data) for data in files.values()} == {rendered_length(shown)}
    for data in files.values():
        assert png_chunks(data) == ["IHDR", "IDAT", "IEND"]
        assert decoded(data).shape == (shown, shown)
    # What the fixed length protects against: compressed, the classes would differ in size.
    compressed = {len(zlib.compress(to_display_uint8(image).tobytes())) for image in images.values()}
    assert len(compressed) == len(images)


def test_pillow_decodes_exactly_the_fixed_mapping():
    image = np.random.default_rng(1).uniform(-1.3, 1.3, (64, 64))
    expected = np.round((np.clip(image, -1, 1) + 1) * 127.5).astype(np.uint8)
    assert np.array_equal(decoded(render_png(image)), expected)
    assert np.array_equal(to_display_uint8(image), expected)
    assert to_display_uint8(np.array([-1.0, 0.0, 1.0])).tolist() == [0, 128, 255]


def test_values_outside_minus_one_to_one_clip():
    image = np.full((8, 8), 3.0)
    image[:4] = -7.0
    pixels = decoded(render_png(image))
    assert set(np.unique(pixels[:4])) == {0} and set(np.unique(pixels[4:])) == {255}


def test_no_per_image_stretch_a_low_contrast_image_stays_mid_grey():
    image = np.tile(np.linspace(-0.5, 0.5, 64), (64, 1))
    pixels = decoded(render_png(image))
    assert pixels.min() == 64 and pixels.max() == 191  # not stretched to 0…255
    flat = decoded(render_png(np.full((16, 16), 0.2)))
    assert np.all(flat == 153)  # a flat image keeps its value; a min–max stretch would be undefined


def test_display_size_replicates_whole_pixels_and_refuses_other_factors():
    image = brain_like(64)
    enlarged = decoded(render_png(image, display_size=256))
    assert np.array_equal(enlarged[::4, ::4], to_display_uint8(image))
    assert np.array_equal(enlarged, np.kron(to_display_uint8(image), np.ones((4, 4), dtype=np.uint8)))
    for bad_size in (100, 32):
        with pytest.raises(ValueError, match="whole multiple"):
            render_png(image, display_size=bad_size)


def test_image_data_spanning_several_stored_blocks_is_valid_and_length_predicted():
    image = np.random.default_rng(2).uniform(-1, 1, (300, 280))  # 300 × 281 bytes > one 65,535-byte block
    data = render_png(image)
    assert len(data) == rendered_length((300, 280))
    assert np.array_equal(decoded(data), to_display_uint8(image))


def test_pixel_checksum_is_the_same_for_the_png_and_its_pixels_and_changes_with_one_pixel():
    image = brain_like(64)
    pixels = to_display_uint8(image)
    assert pixel_checksum(render_png(image)) == pixel_checksum(pixels)
    changed = pixels.copy()
    changed[10, 10] ^= 1
    assert pixel_checksum(changed) != pixel_checksum(pixels)
    assert pixel_checksum(np.zeros((64, 256), np.uint8)) != pixel_checksum(np.zeros((128, 128), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        pixel_checksum(image)


def test_render_refuses_non_finite_and_non_2d_input():
    with pytest.raises(ValueError, match="NaN"):
        render_png(np.full((8, 8), np.nan))
    with pytest.raises(ValueError, match="2D"):
        render_png(np.zeros((2, 8, 8)))


def test_png_chunks_checks_signature_and_crc():
    data = bytearray(render_png(np.zeros((8, 8))))
    data[-20] ^= 0xFF  # inside the IDAT data
    with pytest.raises(ValueError, match="CRC"):
        png_chunks(bytes(data))
    with pytest.raises(ValueError, match="signature"):
        png_chunks(b"GIF89a")
