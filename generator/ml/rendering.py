"""The one rendering function every reader-visible image goes through, real or synthetic alike.

Blinding rests on this module (DESIGN.md, "Blinding"): a reader must not be able to tell an
image's class from anything but its pixels. So every image, whatever made it, is

Mapped to 8 bits by one fixed rule
    clip to [−1, 1], then ``rint((x + 1) · 127.5)``: −1 → 0, 0 → 128, +1 → 255 (``np.rint`` rounds
    halves to even; 0 lands on 127.5 and so on 128). Never a per-image min–max stretch: that
    would hide a generator's intensity drift, the very cue a reader may legitimately use.
Enlarged, if at all, by whole-number pixel replication (nearest neighbour)
    ``display_size`` must be a whole multiple of the image's size. Replication invents no pixel
    values, so the reader sees exactly the 8-bit values of the image; an interpolating filter
    would smooth a GAN's checkerboard and noise texture (the cues under test), and a non-integer
    nearest-neighbour factor would draw uneven pixel widths.
Encoded by our own PNG writer, byte for byte the same for equal pixels
    Signature, IHDR (8-bit grayscale, no interlace), one IDAT, IEND: no other chunk, so no text,
    time, physical size, gamma or colour profile can leak a source. Each row carries filter byte
    0 (none), and the zlib stream holds *stored* deflate blocks (no compression), written here
    rather than by ``zlib.compress(level=0)`` so their layout cannot change with the zlib build.
    Compressed size would differ by class (GAN output compresses differently from acquired
    images), and a file's length is visible to a browser; stored blocks make the length a
    function of the dimensions alone: ``rendered_length(size)``.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Deflate's stored block holds at most 65,535 bytes (its LEN field is 16 bits).
STORED_BLOCK_BYTES = 65_535
# zlib header: CMF 0x78 (deflate, 32 KiB window), FLG 0x01 (no preset dictionary, "fastest" level,
# and FCHECK making CMF·256 + FLG a multiple of 31, as RFC 1950 requires).
ZLIB_HEADER = b"\x78\x01"
_IHDR_GRAYSCALE_8BIT = (8, 0, 0, 0, 0)  # bit depth, colour type 0 (gray), compression, filter, interlace
_CHUNK_OVERHEAD = 12  # length, type and CRC around every chunk's data
_IHDR_DATA_BYTES = 13
_ZLIB_OVERHEAD = len(ZLIB_HEADER) + 4  # header and the Adler-32 trailer
_STORED_BLOCK_HEADER = 5  # BFINAL/BTYPE byte, LEN, NLEN


def to_display_uint8(image: np.ndarray) -> np.ndarray:
    """The fixed mapping from the model's [−1, 1] to 8 bits, for any array shape (clips outside values)."""
    values = np.asarray(image, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("the image holds NaN or infinite values; it cannot be displayed")
    return np.rint((np.clip(values, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def render_png(image: np.ndarray, *, display_size: int | None = None) -> bytes:
    """PNG bytes of a 2D image in [−1, 1]: fixed 8-bit mapping, optional whole-number enlargement.

    The same pixels give the same bytes, and every image of a given (displayed) size gives a file
    of ``rendered_length(size)`` bytes, whatever its content or origin.
    """
    image = np.asarray(image)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"render_png takes one 2D image, got an array of shape {image.shape}")
    pixels = to_display_uint8(image)
    if display_size is not None:
        pixels = enlarge(pixels, display_size)
    return encode_png_gray8(pixels)


def enlarge(pixels: np.ndarray, display_size: int) -> np.ndarray:
    """A square 2D image enlarged to ``display_size`` by pixel replication (a whole-number factor only)."""
    height, width = pixels.shape
    if height != width:
        raise ValueError(f"display_size needs a square image, got {height}×{width}")
    if display_size < height or display_size % height:
        raise ValueError(
            f"display_size must be a whole multiple of the image size {height} (e.g. {2 * height}), got {display_size}"
        )
    factor = display_size // height
    return np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1)


def encode_png_gray8(pixels: np.ndarray) -> bytes:
    """An 8-bit grayscale PNG with only IHDR, IDAT and IEND and uncompressed (stored) image data."""
    pixels = np.ascontiguousarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim != 2 or pixels.size == 0:
        raise ValueError(f"expected a non-empty 2D uint8 array, got {pixels.dtype} of shape {pixels.shape}")
    height, width = pixels.shape
    rows = np.zeros((height, width + 1), dtype=np.uint8)  # column 0 is each row's filter byte: 0, none
    rows[:, 1:] = pixels
    header = struct.pack(">IIBBBBB", width, height, *_IHDR_GRAYSCALE_8BIT)
    return b"".join(
        (PNG_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"IDAT", _zlib_stored(rows.tobytes())), _chunk(b"IEND", b""))
    )


def rendered_length(size: int | tuple[int, int]) -> int:
    """The exact byte length of every rendered PNG of this displayed size (side, or (height, width))."""
    height, width = (size, size) if isinstance(size, int | np.integer) else size
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive, got {size}")
    raw_bytes = height * (width + 1)
    block_count = -(-raw_bytes // STORED_BLOCK_BYTES)
    idat_bytes = _ZLIB_OVERHEAD + block_count * _STORED_BLOCK_HEADER + raw_bytes
    return len(PNG_SIGNATURE) + 3 * _CHUNK_OVERHEAD + _IHDR_DATA_BYTES + idat_bytes


def png_chunks(data: bytes) -> list[str]:
    """The chunk types of a PNG in file order, checking the signature and every chunk's CRC."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG: the signature is missing")
    chunk_types, position = [], len(PNG_SIGNATURE)
    while position < len(data):
        if position + _CHUNK_OVERHEAD > len(data):
            raise ValueError(f"truncated chunk header at byte {position}")
        (length,) = struct.unpack(">I", data[position : position + 4])
        chunk_type = data[position + 4 : position + 8]
        body_end = position + 8 + length
        if body_end + 4 > len(data):
            raise ValueError(f"chunk {chunk_type!r} at byte {position} runs past the end of the data")
        (crc,) = struct.unpack(">I", data[body_end : body_end + 4])
        if zlib.crc32(data[position + 4 : body_end]) != crc:
            raise ValueError(f"chunk {chunk_type!r} at byte {position} fails its CRC")
        chunk_types.append(chunk_type.decode("ascii", errors="replace"))
        position = body_end + 4
    return chunk_types


def pixel_checksum(image: np.ndarray | bytes) -> str:
    """sha256 of an image's 8-bit pixels and dimensions: a 2D uint8 array, or PNG bytes (decoded first).

    The same picture gives the same checksum whichever file or generator it came from, so the bank
    can recognise an image it already holds. The dimensions are hashed too, so 64×256 and 128×128
    arrays of the same bytes differ. Checksum the matrix-size pixels, not an enlarged rendering.
    """
    if isinstance(image, bytes | bytearray | memoryview):
        pixels = decode_png_gray8(bytes(image))
    else:
        pixels = np.asarray(image)
        if pixels.dtype != np.uint8 or pixels.ndim != 2:
            raise TypeError(
                f"pixel_checksum takes 2D uint8 pixels (see to_display_uint8) or PNG bytes, "
                f"got {pixels.dtype} of shape {pixels.shape}"
            )
    height, width = pixels.shape
    digest = hashlib.sha256(f"{height}x{width}:".encode())
    digest.update(np.ascontiguousarray(pixels).tobytes())
    return digest.hexdigest()


def decode_png_gray8(data: bytes) -> np.ndarray:
    """The pixels of an 8-bit grayscale PNG as a 2D uint8 array (any encoder's PNG, via Pillow)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as decoded:
        if decoded.format != "PNG" or decoded.mode != "L":
            raise ValueError(f"expected an 8-bit grayscale PNG, got {decoded.format} in mode {decoded.mode}")
        return np.asarray(decoded, dtype=np.uint8).copy()


def _chunk(chunk_type: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + chunk_type + body + struct.pack(">I", zlib.crc32(chunk_type + body))


def _zlib_stored(raw: bytes) -> bytes:
    """A zlib stream of stored (uncompressed) deflate blocks: its length depends on len(raw) only."""
    parts = [ZLIB_HEADER]
    block_starts = range(0, len(raw), STORED_BLOCK_BYTES) if raw else [0]
    last_start = block_starts[-1]
    for start in block_starts:
        block = raw[start : start + STORED_BLOCK_BYTES]
        # Each stored block starts byte-aligned: BFINAL in bit 0, BTYPE 00, the rest of the byte padding.
        final = 1 if start == last_start else 0
        parts.append(struct.pack("<BHH", final, len(block), len(block) ^ 0xFFFF))
        parts.append(block)
    parts.append(struct.pack(">I", zlib.adler32(raw)))
    return b"".join(parts)
