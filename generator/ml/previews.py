"""The preview an admin judges an alignment by: the centre axial section beside a mid-sagittal
view with the chosen level (and the ±4 mm sections) marked."""

import io

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from .slicing import sample_slices

PREVIEW_SIZE = 256
LEVEL_COLOUR = (255, 80, 60)
SECTION_COLOUR = (255, 190, 60)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round((np.clip(image, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def mid_sagittal(
    volume: np.ndarray, voxel_from_world: np.ndarray, *, centre_mm: tuple[float, float, float], fov_mm: float, size: int
) -> np.ndarray:
    """The sagittal plane through the centre point: rows run superior→inferior, columns
    anterior→posterior (anterior on the viewer's left, as sagittal images are read)."""
    step = fov_mm / size
    offsets = (np.arange(size) - (size - 1) / 2) * step
    z = centre_mm[2] - offsets[:, None] * np.ones((1, size))
    y = centre_mm[1] - offsets[None, :] * np.ones((size, 1))
    x = np.full_like(z, centre_mm[0])
    world = np.stack([x, y, z, np.ones_like(z)]).reshape(4, -1)
    voxels = (voxel_from_world @ world)[:3]
    sampled = ndimage.map_coordinates(volume, voxels, order=1, mode="constant", cval=-1.0)
    return sampled.reshape(size, size).astype(np.float32)


def alignment_preview_png(
    volume: np.ndarray,
    voxel_from_world: np.ndarray,
    *,
    centre_mm: tuple[float, float, float],
    fov_mm: float,
    section_offsets_mm: tuple[float, ...] = (-4.0, -2.0, 2.0, 4.0),
    size: int = PREVIEW_SIZE,
) -> bytes:
    """PNG bytes: axial centre section (left) and mid-sagittal with the level marked (right)."""
    zero = np.zeros((1, 5), dtype=np.float64)
    axial = sample_slices(volume, voxel_from_world, zero, centre_mm=centre_mm, matrix_size=size, fov_mm=fov_mm)[0]
    sagittal = mid_sagittal(volume, voxel_from_world, centre_mm=centre_mm, fov_mm=fov_mm, size=size)
    canvas = Image.new("RGB", (2 * size + 8, size), (0, 0, 0))
    canvas.paste(Image.fromarray(_to_uint8(axial)).convert("RGB"), (0, 0))
    canvas.paste(Image.fromarray(_to_uint8(sagittal)).convert("RGB"), (size + 8, 0))
    draw = ImageDraw.Draw(canvas)
    pixels_per_mm = size / fov_mm
    centre_row = (size - 1) / 2
    for offset in section_offsets_mm:
        row = round(centre_row - offset * pixels_per_mm)
        draw.line([(size + 8, row), (2 * size + 7, row)], fill=SECTION_COLOUR, width=1)
    draw.line([(size + 8, round(centre_row)), (2 * size + 7, round(centre_row))], fill=LEVEL_COLOUR, width=2)
    out = io.BytesIO()
    canvas.save(out, format="PNG")
    return out.getvalue()
