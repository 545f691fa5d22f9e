"""Images made elsewhere (any generator's output, or a group's own real slices) read into the model's [−1, 1].

An imported image then goes through the same renderer as our own (``rendering.render_png``), so the
one thing this module must get right for blinding is the intensity mapping: ONE documented linear
map from the file's value range onto [−1, 1], never a per-image min–max stretch (which would
differ from our renderer and hide a generator's intensity drift).

The mapping (``ImportedImage.input_range`` records the range used, mapped onto −1…+1)
    uint8 (PNG, TIFF, .npy, NIfTI)    0 → −1, 255 → +1, linearly: ``v / 127.5 − 1``
    uint16 (PNG, TIFF, .npy, NIfTI)   0 → −1, 65535 → +1: ``v / 32767.5 − 1``
    float (.npy, 32-bit TIFF, NIfTI)  ``float_range="auto"`` (default): values with a negative
                                      minimum must lie in [−1, 1] and are taken as they are;
                                      values all ≥ 0 must lie in [0, 1] and map 0 → −1, 1 → +1
                                      (a [0, 1] image lies inside [−1, 1] too, so the sign of the
                                      minimum is what tells the two apart); anything else is
                                      refused. ``"minus_one_to_one"`` or ``"zero_to_one"`` state
                                      the range instead of inferring it, which a batch should do:
                                      "auto" decides per image, and a batch whose images resolve
                                      to different ranges (see ``input_range``) is suspect.
                                      Values up to ``FLOAT_TOLERANCE`` outside the range are
                                      rounding and are clipped.
    other integer types (int16, int32, …) and bool are refused: their scale is unknown (an int16
    MR slice rarely uses its type's range), so the user saves 8/16-bit unsigned or scaled float.

Orientation: every format is read as its array is stored, first axis = rows (top to bottom),
second = columns. A NIfTI's affine is ignored: a 2D import has no anatomy to align, and reading
every format the same way means the same array gives the same picture whichever file it came in,
so a group's real and synthetic images cannot differ in orientation because of their format.

Size: ``expected_size`` (the bank's matrix size) refuses any other size rather than resampling.
A resampling filter applied to imported images but not to the bank's own (or to one class only)
would mark them; a group resamples both classes itself, identically, before importing.

Accepted: PNG and TIFF (8/16-bit grayscale; RGB with equal channels; 32-bit float TIFF), NumPy
``.npy`` (2D, or with extra singleton axes), single-file NIfTI-1/2 (.nii/.nii.gz) with a singleton
third axis. Formats are recognised by their content, not their file name. JPEG is refused: lossy
compression artefacts would differ from the bank's images.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

ACCEPTED_FORMATS = "PNG or TIFF (8- or 16-bit grayscale), NumPy .npy (2D), or a 2D NIfTI (.nii/.nii.gz)"
MAX_PIXELS = 4096 * 4096  # far above any matrix size; stops a huge or hostile file before it is read
FLOAT_TOLERANCE = 1e-4
FLOAT_RANGES = ("auto", "minus_one_to_one", "zero_to_one")
# NIfTI-1 and -2 headers: their size in the first 4 bytes (either byte order), their magic where it sits.
_NIFTI_HEADERS = (
    ("Nifti1Image", 348, slice(344, 348), (b"n+1\x00", b"ni1\x00")),
    ("Nifti2Image", 540, slice(4, 8), (b"n+2\x00",)),
)
_FLOAT_RANGE_HELP = (
    "scale float images to [−1, 1] (the model's range) or [0, 1], or save them as 8- or 16-bit grayscale"
)


class ImageImportError(ValueError):
    """An external image that cannot enter the bank; the message says why and what to do."""


@dataclass(frozen=True, eq=False)
class ImportedImage:
    """Pixels float32 [h, w] in [−1, 1], and where they came from."""

    pixels: np.ndarray
    source_format: str  # "png", "tiff", "npy" or "nifti"
    original_dtype: str
    original_shape: tuple[int, ...]
    input_range: tuple[float, float]  # the file's values mapped onto −1 and +1


def load_external_image(path: Path, *, expected_size: int | None = None, float_range: str = "auto") -> ImportedImage:
    """Read one 2D image file and map it onto [−1, 1] by the module's fixed rule; ImageImportError if it can't."""
    path = Path(path)
    label = path.name
    if float_range not in FLOAT_RANGES:
        raise ValueError(f"float_range must be one of {FLOAT_RANGES}, got {float_range!r}")
    try:
        with path.open("rb") as handle:
            head = handle.read(352)
    except OSError as exc:
        raise ImageImportError(f"{label} cannot be read: {exc.strerror or exc}") from exc
    if not head:
        raise ImageImportError(f"{label} is empty (0 bytes).")
    source_format = _sniff_format(head, label)
    reader = {"png": _read_with_pillow, "tiff": _read_with_pillow, "npy": _read_npy, "nifti": _read_nifti}
    values = reader[source_format](path, label)
    original_dtype, original_shape = str(values.dtype), tuple(values.shape)
    values = _two_dimensional(values, label)
    if expected_size is not None and values.shape != (expected_size, expected_size):
        height, width = values.shape
        raise ImageImportError(
            f"{label} is {height}×{width} pixels; this bank's images are {expected_size}×{expected_size}. "
            f"Export both real and synthetic images at {expected_size}×{expected_size}: the bank does not "
            "resample, since a filter applied to imported images only would set them apart."
        )
    pixels, input_range = _to_model_range(values, label, float_range)
    return ImportedImage(pixels, source_format, original_dtype, original_shape, input_range)


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _sniff_format(head: bytes, label: str) -> str:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"\x1f\x8b") or _nifti_class_name(head):
        return "nifti"  # a gzip file is read as .nii.gz; anything else inside is refused there
    if head.startswith(b"\xff\xd8\xff"):
        raise ImageImportError(
            f"{label} is a JPEG. Its lossy compression artefacts would set it apart from the bank's images; "
            "export the original pixels as PNG or TIFF instead."
        )
    raise ImageImportError(f"{label} is not an image file this bank reads. Upload {ACCEPTED_FORMATS}.")


def _read_with_pillow(path: Path, label: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            frames = getattr(image, "n_frames", 1)
            if frames > 1:
                raise ImageImportError(
                    f"{label} holds {frames} frames, i.e. 3D data (a stack). Import one 2D slice per file."
                )
            _check_pixel_count(image.width * image.height, label)
            return _pillow_pixels(image, label)
    except ImageImportError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageImportError(f"{label} is not a readable image ({exc}). Upload {ACCEPTED_FORMATS}.") from exc


def _pillow_pixels(image: Image.Image, label: str) -> np.ndarray:
    mode = image.mode
    if mode == "L":
        return np.asarray(image, dtype=np.uint8)
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        # Pillow opens 16-bit grayscale PNG and TIFF as "I;16" (or "I;16B" big-endian): uint16 either way.
        return np.asarray(image).astype(np.uint16)
    if mode == "F":
        return np.asarray(image, dtype=np.float32)
    if mode in ("LA", "RGB", "RGBA", "P", "PA"):
        channels = np.asarray(image.convert("RGBA" if mode in ("P", "PA") else mode))
        channels = channels[..., None] if channels.ndim == 2 else channels
        colour = channels[..., : channels.shape[-1] - (1 if mode in ("LA", "RGBA", "P", "PA") else 0)]
        if channels.shape[-1] in (2, 4) and (channels[..., -1] != 255).any():
            raise ImageImportError(
                f"{label} has transparent pixels; a reader would see them over a background. Save it without alpha."
            )
        if (colour != colour[..., :1]).any():
            raise ImageImportError(
                f"{label} is a colour image (its channels differ). The bank holds grayscale MR images: "
                "save it as 8- or 16-bit grayscale."
            )
        return np.ascontiguousarray(colour[..., 0], dtype=np.uint8)
    if mode == "1":
        raise ImageImportError(f"{label} is a 1-bit (black and white) image; save it as 8- or 16-bit grayscale.")
    if mode == "I":
        raise ImageImportError(
            f"{label} holds 32-bit integers, whose intensity scale is unknown; save it as 8- or 16-bit grayscale "
            "or as float in [−1, 1] or [0, 1]."
        )
    raise ImageImportError(f"{label} is a colour image (mode {mode}); save it as 8- or 16-bit grayscale.")


def _read_npy(path: Path, label: str) -> np.ndarray:
    try:
        # Memory-mapped first, so the shape is checked before a huge array is read.
        values = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ImageImportError(f"{label} is not a readable NumPy array ({exc}).") from exc
    if not isinstance(values, np.ndarray) or values.dtype.fields is not None or values.dtype.kind not in "biuf":
        raise ImageImportError(f"{label} holds {values.dtype} values, not a numeric image.")
    _check_pixel_count(values.size, label)
    return np.array(values)


def _read_nifti(path: Path, label: str) -> np.ndarray:
    import nibabel

    limit = MAX_PIXELS * 8 + 1024  # the largest float64 image we would take, plus its header
    try:
        with path.open("rb") as handle:
            raw = handle.read(limit + 1)
        if raw.startswith(b"\x1f\x8b"):
            with gzip.open(path, "rb") as handle:
                raw = handle.read(limit + 1)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise ImageImportError(f"{label} is not a readable gzip file ({exc}).") from exc
    if len(raw) > limit:
        raise ImageImportError(f"{label} is too large for one 2D image (more than {MAX_PIXELS:,} pixels).")
    class_name = _nifti_class_name(raw)
    if class_name is None:
        raise ImageImportError(f"{label} is not a NIfTI image. Upload {ACCEPTED_FORMATS}.")
    try:
        image = getattr(nibabel, class_name).from_bytes(raw)
        _check_pixel_count(int(np.prod(image.shape)), label)
        # dataobj applies the header's scl_slope/scl_inter, if set (the result is then float).
        return np.asarray(image.dataobj)
    except ImageImportError:
        raise
    except Exception as exc:  # nibabel raises a variety of types for malformed headers and data
        raise ImageImportError(f"{label} is not a readable single-file NIfTI image ({exc}).") from exc


def _nifti_class_name(head: bytes) -> str | None:
    for class_name, header_size, magic_at, magics in _NIFTI_HEADERS:
        sizes = {int.from_bytes(head[:4], byteorder) for byteorder in ("little", "big")}
        if header_size in sizes and head[magic_at] in magics:
            return class_name
    return None


def _check_pixel_count(pixel_count: int, label: str) -> None:
    if pixel_count > MAX_PIXELS:
        raise ImageImportError(f"{label} has {pixel_count:,} values, more than one 2D image ({MAX_PIXELS:,} at most).")


def _two_dimensional(values: np.ndarray, label: str) -> np.ndarray:
    if values.size == 0:
        raise ImageImportError(f"{label} holds no pixels (shape {values.shape}).")
    squeezed = values.reshape([extent for extent in values.shape if extent != 1])
    if squeezed.ndim > 2:
        raise ImageImportError(
            f"{label} holds {squeezed.ndim}D data of shape {values.shape}; the bank takes 2D images. "
            "Import one 2D slice per file (and a single grayscale channel)."
        )
    if squeezed.ndim < 2:
        raise ImageImportError(f"{label} holds a single row or value (shape {values.shape}), not a 2D image.")
    return squeezed


def _to_model_range(values: np.ndarray, label: str, float_range: str) -> tuple[np.ndarray, tuple[float, float]]:
    if values.dtype == np.uint8:
        return (values.astype(np.float32) / np.float32(127.5) - 1).astype(np.float32), (0.0, 255.0)
    if values.dtype == np.uint16:
        return (values.astype(np.float64) / 32767.5 - 1).astype(np.float32), (0.0, 65535.0)
    if values.dtype.kind != "f":
        raise ImageImportError(
            f"{label} holds {values.dtype} values, whose intensity scale is unknown. Save it as uint8 (0–255) or "
            "uint16 (0–65535), or as float scaled to [−1, 1] or [0, 1]."
        )
    values = values.astype(np.float64)
    non_finite = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
    if non_finite:
        raise ImageImportError(f"{label} contains {non_finite:,} non-finite values (NaN or infinity).")
    lowest, highest = float(values.min()), float(values.max())
    resolved = float_range
    if float_range == "auto":
        resolved = "minus_one_to_one" if lowest < 0 else "zero_to_one"
    if resolved == "minus_one_to_one" and lowest >= -1 - FLOAT_TOLERANCE and highest <= 1 + FLOAT_TOLERANCE:
        return np.clip(values, -1.0, 1.0).astype(np.float32), (-1.0, 1.0)
    if resolved == "zero_to_one" and lowest >= -FLOAT_TOLERANCE and highest <= 1 + FLOAT_TOLERANCE:
        return (np.clip(values, 0.0, 1.0) * 2.0 - 1.0).astype(np.float32), (0.0, 1.0)
    allowed = {"auto": "[−1, 1] or [0, 1]", "minus_one_to_one": "[−1, 1]", "zero_to_one": "[0, 1]"}[float_range]
    raise ImageImportError(
        f"{label} has float values from {lowest:g} to {highest:g}, outside {allowed}: {_FLOAT_RANGE_HELP}."
    )
