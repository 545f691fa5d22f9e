"""Load one T1-weighted volume (NIfTI, DICOM folder, or zip of one DICOM series) as a checked RAS+ array.

Every refusal is a VolumeError whose message tells the admin what is wrong and what to do.
Only pixel data and geometry survive loading: no DICOM header text (names, IDs, dates) is kept.

World coordinates are RAS+ millimetres (x to the patient's right, y anterior, z superior), as in
NIfTI and MNI space. DICOM and SimpleITK use LPS+; the two differ by a sign flip of x and y
(``LPS_FROM_RAS``), converted here and only here (``ras_affine_from_sitk``, ``sitk_image_from_ras``).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import tempfile
import zipfile
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import nibabel as nib
import numpy as np
import pydicom
import SimpleITK as sitk

from .patients import patient_key

# A voxel edge under 0.1 mm or over 10 mm is no clinical T1-weighted scan: usually a header
# written in metres or centimetres, or a thick localizer.
MIN_VOXEL_SIZE_MM = 0.1
MAX_VOXEL_SIZE_MM = 10.0
# An adult brain measures about 140 (left-right) x 170 (front-back) x 120 (cranio-caudal) mm;
# a field of view under 100 mm along any axis cannot hold the basal-ganglia level and its
# ±10° rotations, so it is a slab, a partial acquisition or a header with wrong units.
MIN_FIELD_OF_VIEW_MM = 100.0
# 512³ voxels (512 MiB as float32) is beyond any T1-weighted scan; more would exhaust a worker.
MAX_VOXELS = 512**3
# Zip archives: caps that a legitimate series (≈1,000 slices of 512² × 16 bit ≈ 0.5 GB) stays far
# below and a zip bomb (a small file that unpacks to gigabytes) exceeds.
MAX_ZIP_UNCOMPRESSED_BYTES = 2 * 1024**3
MAX_ZIP_COMPRESSION_RATIO = 100  # DICOM compresses 2-10:1; bombs reach 1,000:1 and more
MAX_ZIP_MEMBERS = 20_000
# Slice positions closer than this along the slice normal are the same position.
SLICE_POSITION_TOLERANCE_MM = 0.01
# A gap this much wider or narrower than the typical one means missing or uneven slices.
SLICE_SPACING_TOLERANCE = 0.1

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])  # its own inverse
ACCEPTED_FORMATS = "a NIfTI file (.nii or .nii.gz), a folder of DICOM files, or a .zip of one DICOM series"


class VolumeError(ValueError):
    """An upload that cannot become a volume; the message is meant for the admin who uploaded it."""


@dataclass(frozen=True, eq=False)
class LoadedVolume:
    """A 3D volume in canonical RAS+ orientation: pixel data and geometry, nothing else."""

    data: np.ndarray  # float32, 3D, axes as close to x=R, y=A, z=S as the scan allows
    affine: np.ndarray  # 4x4, voxel index -> world mm (RAS+)
    voxel_size_mm: tuple[float, float, float]
    source_format: str  # "nifti" or "dicom"
    # The keyed hash of a DICOM series' patient ID (generator.ml.patients), when a secret was given
    # and the ID is not a placeholder; the ID itself never leaves the reader below.
    patient_key: str | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.data.shape)


def load_volume(
    path: Path, *, max_bytes: int | None = None, max_voxels: int | None = None, patient_secret: bytes | None = None
) -> LoadedVolume:
    """Read and check one upload; raise VolumeError with an actionable message if it is unusable.

    ``max_voxels`` is checked from the headers (NIfTI's shape; DICOM rows × columns × frames ×
    files), before any pixel is decoded. With ``patient_secret``, a DICOM series also yields its
    patient's keyed hash (``patient_key``)."""
    path = Path(path)
    patient = _NO_PATIENT
    label = path.name
    if not path.exists():
        raise VolumeError(f"{label} does not exist. Upload {ACCEPTED_FORMATS}.")
    _check_upload_size(path, label, max_bytes)
    name = path.name.lower()
    if path.is_dir():
        data, affine, patient = _read_dicom_folder(path, label, max_voxels)
        source_format = "dicom"
    elif name.endswith(".zip"):
        with tempfile.TemporaryDirectory(prefix="synthread-upload-") as unpacked:
            _extract_zip_safely(path, Path(unpacked), label)
            data, affine, patient = _read_dicom_folder(Path(unpacked), label, max_voxels)
        source_format = "dicom"
    elif name.endswith((".nii", ".nii.gz")):
        data, affine = _read_nifti(path, label, max_voxels)
        source_format = "nifti"
    elif name.endswith((".dcm", ".ima")):
        raise VolumeError(
            f"{label} is a single DICOM file, i.e. one slice. Upload the whole series: its folder, or a .zip of it."
        )
    else:
        raise VolumeError(f"{label} is not a supported format. Upload {ACCEPTED_FORMATS}.")
    loaded = _checked_canonical_volume(data, affine, label, source_format)
    if patient_secret is None or patient == _NO_PATIENT:
        return loaded
    return dataclasses.replace(loaded, patient_key=patient_key(*patient, secret=patient_secret))


def file_checksum(path: Path) -> str:
    """sha256 of a file's bytes; for a folder, of its sorted relative file names, sizes and bytes."""
    path = Path(path)
    digest = hashlib.sha256()
    if not path.is_dir():
        _hash_file_into(digest, path)
        return digest.hexdigest()
    files = sorted((file.relative_to(path).as_posix(), file) for file in path.rglob("*") if file.is_file())
    for relative_name, file in files:
        # Name and size delimit each file, so moving bytes between files changes the hash.
        digest.update(relative_name.encode("utf-8") + b"\0" + file.stat().st_size.to_bytes(8, "big"))
        _hash_file_into(digest, file)
    return digest.hexdigest()


def ras_affine_from_sitk(image: sitk.Image) -> np.ndarray:
    """The RAS+ voxel->world affine of a SimpleITK image (whose geometry is LPS+), for arrays
    indexed [x, y, z], i.e. ``sitk.GetArrayFromImage(image).transpose(2, 1, 0)``."""
    direction = np.array(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    lps_affine = np.eye(4)
    lps_affine[:3, :3] = direction * np.array(image.GetSpacing())
    lps_affine[:3, 3] = image.GetOrigin()
    return LPS_FROM_RAS @ lps_affine


def sitk_image_from_ras(data: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A SimpleITK image (LPS+ geometry) of an array indexed [x, y, z] with a RAS+ affine."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(data, (2, 1, 0))))
    lps_affine = LPS_FROM_RAS @ np.asarray(affine, dtype=np.float64)
    spacing = np.linalg.norm(lps_affine[:3, :3], axis=0)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(d) for d in (lps_affine[:3, :3] / spacing).ravel()))
    image.SetOrigin(tuple(float(o) for o in lps_affine[:3, 3]))
    return image


# --- checks shared by every format -------------------------------------------------------------


def _check_upload_size(path: Path, label: str, max_bytes: int | None) -> None:
    if max_bytes is None:
        return
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
    if size > max_bytes:
        raise VolumeError(
            f"{label} is {size / 1e6:.1f} MB, over the upload limit of {max_bytes / 1e6:.1f} MB. "
            "Upload one T1-weighted volume only (a .nii.gz is the smallest form), or ask an administrator "
            "to raise the limit."
        )


def _three_dimensional_shape(shape: tuple[int, ...], label: str) -> tuple[int, int, int]:
    # Some tools store a 3D volume as (x, y, z, 1): a trailing axis of length 1 is no 4th dimension.
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) == 4:
        raise VolumeError(
            f"{label} is 4D: a series of {shape[3]} volumes of {shape[0]}×{shape[1]}×{shape[2]} voxels "
            "(e.g. fMRI, diffusion or several echoes). One 3D T1-weighted volume is needed: upload it alone."
        )
    if len(shape) > 4:
        raise VolumeError(f"{label} has {len(shape)} dimensions; one 3D T1-weighted volume is needed.")
    if len(shape) < 3 or min(shape) == 1:
        in_plane = "×".join(str(n) for n in shape if n != 1)
        raise VolumeError(
            f"{label} is a 2D image ({in_plane} pixels, a single slice). A 3D T1-weighted volume "
            "(the full stack of slices) is needed."
        )
    if int(np.prod(shape)) > MAX_VOXELS:
        raise VolumeError(f"{label} has {int(np.prod(shape)):,} voxels, more than the {MAX_VOXELS:,} allowed.")
    return shape


def _check_voxel_size(voxel_size: np.ndarray, label: str) -> None:
    if voxel_size.min() < MIN_VOXEL_SIZE_MM or voxel_size.max() > MAX_VOXEL_SIZE_MM:
        sizes = "×".join(f"{v:.3g}" for v in voxel_size)
        raise VolumeError(
            f"{label} has a voxel size of {sizes} mm, outside {MIN_VOXEL_SIZE_MM:g}-{MAX_VOXEL_SIZE_MM:g} mm: "
            "the header is probably missing its voxel size or in the wrong units, or this is not a T1-weighted "
            "brain scan. Check the export, or convert the DICOM again with dcm2niix."
        )


def _checked_canonical_volume(data: np.ndarray, affine: np.ndarray, label: str, source_format: str) -> LoadedVolume:
    shape = _three_dimensional_shape(data.shape, label)
    data = data.reshape(shape)
    affine = np.asarray(affine, dtype=np.float64)
    voxel_size = np.linalg.norm(affine[:3, :3], axis=0)
    if not np.all(np.isfinite(affine)):
        raise VolumeError(f"{label} has no valid geometry in its header. Export the scan again, or use dcm2niix.")
    _check_voxel_size(voxel_size, label)
    if abs(np.linalg.det(affine[:3, :3])) < 1e-6 * np.prod(voxel_size):
        raise VolumeError(f"{label} has degenerate geometry (its voxel axes are parallel). Export the scan again.")
    field_of_view = voxel_size * np.array(shape)
    if field_of_view.min() < MIN_FIELD_OF_VIEW_MM:
        extent = "×".join(f"{v:.0f}" for v in field_of_view)
        raise VolumeError(
            f"{label} covers only {extent} mm; every axis must span at least {MIN_FIELD_OF_VIEW_MM:.0f} mm to "
            "hold a whole brain. Upload a whole-head T1-weighted volume, not a slab or a partial acquisition."
        )
    data = np.asarray(data, dtype=np.float32)
    finite = np.isfinite(data)
    if not finite.all():
        raise VolumeError(
            f"{label} contains {data.size - int(finite.sum()):,} voxels that are not numbers (NaN or infinite), "
            "a sign of a failed conversion or processing step. Upload the original scan."
        )
    if data.min() == data.max():
        raise VolumeError(f"{label} holds no image: every voxel has the value {data.min():g}.")
    canonical = nib.as_closest_canonical(nib.Nifti1Image(data, affine))
    canonical_affine = canonical.affine.astype(np.float64)
    return LoadedVolume(
        data=np.ascontiguousarray(np.asanyarray(canonical.dataobj), dtype=np.float32),
        affine=canonical_affine,
        voxel_size_mm=tuple(float(v) for v in np.linalg.norm(canonical_affine[:3, :3], axis=0)),
        source_format=source_format,
    )


def _hash_file_into(digest: hashlib._Hash, path: Path) -> None:
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)


# --- NIfTI -------------------------------------------------------------------------------------


def _check_voxel_count(voxels: int, label: str, max_voxels: int | None, shape: str) -> None:
    if max_voxels is not None and voxels > max_voxels:
        raise VolumeError(
            f"{label} holds {voxels:,} voxels ({shape}), over the limit of {max_voxels:,} (VOLUME_MAX_VOXELS). "
            "A T1-weighted brain volume needs far fewer: upload one 3D series, or resample it first."
        )


def _read_nifti(path: Path, label: str, max_voxels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    if path.name.lower().endswith(".gz"):
        with open(path, "rb") as stream:
            if stream.read(2) != b"\x1f\x8b":
                raise VolumeError(
                    f"{label} is named .nii.gz but is not gzip-compressed. If it is an uncompressed NIfTI, "
                    "rename it to .nii; otherwise it is not a NIfTI image."
                )
    try:
        image = nib.load(path)
        if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
            raise nib.filebasedimages.ImageFileError(type(image).__name__)
        # The shape is checked from the header before a possibly huge 4D data block is read.
        shape = _three_dimensional_shape(image.shape, label)
        _check_voxel_count(int(np.prod(shape)), label, max_voxels, "×".join(str(n) for n in shape))
        # nibabel quietly replaces a zero voxel size by 1 mm; without an sform (the only geometry
        # not built from the voxel size) that would invent a geometry, so read the header as written.
        if int(image.header["sform_code"]) == 0:
            with nib.openers.ImageOpener(path) as stream:
                written = type(image.header).from_fileobj(stream, check=False)
            _check_voxel_size(np.abs(np.asarray(written.get_zooms()[:3], dtype=np.float64)), label)
        data = image.get_fdata(dtype=np.float32)
    except nib.filebasedimages.ImageFileError as error:
        raise VolumeError(
            f"{label} is not a NIfTI image (its content is not a NIfTI header). Upload {ACCEPTED_FORMATS}."
        ) from error
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise VolumeError(
            f"{label} is a damaged gzip file (truncated or corrupted: {error}). Upload it again, or export it anew."
        ) from error
    except (OSError, ValueError) as error:
        raise VolumeError(f"{label} is a damaged NIfTI file ({error}). Upload it again, or export it anew.") from error
    return data, image.affine


# --- DICOM -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _DicomSlice:
    """The few header fields needed to group and order slices; held only while loading."""

    path: Path
    series_uid: str
    series_number: str
    series_description: str
    orientation: tuple[float, ...]
    position: tuple[float, ...]
    rows_columns: tuple[int, int]
    frames: int
    patient: tuple[str, str] = field(default=("", ""), repr=False)  # (PatientID, IssuerOfPatientID)


_NO_PATIENT = ("", "")


def _read_dicom_slice(path: Path) -> _DicomSlice | None:
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
        if "Rows" not in header or "ImagePositionPatient" not in header:
            return None  # DICOMDIR, report, presentation state: DICOM, but no image slice
        return _DicomSlice(
            path=path,
            series_uid=str(header.get("SeriesInstanceUID", "")),
            series_number=str(header.get("SeriesNumber", "?")),
            series_description=str(header.get("SeriesDescription", "")).strip(),
            orientation=tuple(float(v) for v in header.ImageOrientationPatient),
            position=tuple(float(v) for v in header.ImagePositionPatient),
            rows_columns=(int(header.Rows), int(header.Columns)),
            frames=int(header.get("NumberOfFrames", 1) or 1),
            patient=(str(header.get("PatientID", "") or ""), str(header.get("IssuerOfPatientID", "") or "")),
        )
    except Exception:  # any unreadable or non-DICOM file beside the series is skipped, not fatal
        return None


def _read_dicom_folder(
    folder: Path, label: str, max_voxels: int | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[str, str]]:
    files = sorted(file for file in folder.rglob("*") if file.is_file())
    slices = [found for file in files if (found := _read_dicom_slice(file)) is not None]
    if not slices:
        raise VolumeError(
            f"{label} holds no DICOM images ({len(files)} files looked at). Upload a folder or .zip "
            "with the DICOM files of one T1-weighted series, or a NIfTI file."
        )
    series: dict[str, list[_DicomSlice]] = defaultdict(list)
    for found in slices:
        series[found.series_uid].append(found)
    if len(series) > 1:
        listing = "; ".join(
            f"series {members[0].series_number} '{members[0].series_description or 'no description'}' "
            f"({len(members)} images)"
            for members in sorted(series.values(), key=lambda members: _series_number_order(members[0]))
        )
        raise VolumeError(
            f"{label} holds {len(series)} DICOM series: {listing}. Upload one series at a time: "
            "only the T1-weighted one."
        )
    ordered = _ordered_single_volume(slices, label)
    rows, columns = ordered[0].rows_columns
    frames = max(found.frames for found in ordered)
    described = f"{rows}×{columns} × {frames} frame(s) × {len(ordered)} files"
    _check_voxel_count(rows * columns * frames * len(ordered), label, max_voxels, described)
    patients = {found.patient for found in ordered}
    if len(patients) > 1:
        raise VolumeError(f"{label}: the slices of this series name {len(patients)} different patients.")
    # SimpleITK's ImageSeriesReader (GDCM) decodes every transfer syntax a scanner writes
    # (including JPEG/JPEG 2000 compressed ones that pydicom cannot decode without extra plugins),
    # applies rescale slope and intercept, and builds the geometry from the positions and
    # orientation of the ordered slices. pydicom only reads the headers above, to group and order
    # slices and to refuse 4D or incomplete series with a clear message. The reader is not asked
    # for its metadata dictionaries, so no header text leaves this function.
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(found.path) for found in ordered])
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise VolumeError(f"{label}: the DICOM pixel data cannot be read ({error.args[0][-200:]}).") from error
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise VolumeError(f"{label} is a colour (RGB) DICOM series; a greyscale T1-weighted series is needed.")
    data = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    return data, ras_affine_from_sitk(image), patients.pop()


def _series_number_order(found: _DicomSlice) -> tuple[int, str]:
    return (int(found.series_number), "") if found.series_number.isdigit() else (1 << 30, found.series_number)


def _ordered_single_volume(slices: list[_DicomSlice], label: str) -> list[_DicomSlice]:
    """The slices sorted along their normal, after refusing series that are not one 3D volume."""
    if any(found.frames > 1 for found in slices):
        raise VolumeError(
            f"{label} is an enhanced (multi-frame) DICOM, which is not supported. Export the series as "
            "classic DICOM (one file per slice), or convert it to NIfTI with dcm2niix."
        )
    orientations = np.array([found.orientation for found in slices])
    if np.abs(orientations - orientations[0]).max() > 1e-3:
        raise VolumeError(
            f"{label} mixes slices of different orientations (e.g. a 3-plane localizer). "
            "Upload the 3D T1-weighted series only."
        )
    if len({found.rows_columns for found in slices}) > 1:
        raise VolumeError(f"{label} mixes slices of different matrix sizes; upload one T1-weighted series only.")
    row, column = orientations[0, :3], orientations[0, 3:]
    normal = np.cross(row, column)
    distance = np.array([np.dot(found.position, normal) for found in slices])
    order = np.argsort(distance, kind="stable")
    distinct = np.unique(np.round(distance / SLICE_POSITION_TOLERANCE_MM))
    if len(distinct) < len(slices):
        if len(slices) % len(distinct) == 0:
            raise VolumeError(
                f"{label} is 4D: a series of {len(slices) // len(distinct)} volumes of {len(distinct)} slices "
                "each (e.g. fMRI, diffusion or several echoes). One 3D T1-weighted volume is needed: upload it alone."
            )
        raise VolumeError(
            f"{label} has {len(slices)} images at only {len(distinct)} slice positions: slices are repeated. "
            "Upload one complete T1-weighted series."
        )
    gaps = np.diff(distance[order])
    if len(gaps) and np.abs(gaps - np.median(gaps)).max() > SLICE_SPACING_TOLERANCE * np.median(gaps):
        raise VolumeError(
            f"{label} has missing or unevenly spaced slices (gaps from {gaps.min():.2f} to {gaps.max():.2f} mm). "
            "Upload the complete series."
        )
    return [slices[i] for i in order]


# --- zip ---------------------------------------------------------------------------------------


def _extract_zip_safely(archive: Path, destination: Path, label: str) -> None:
    """Unpack into ``destination`` only, after checking every member name and the sizes they claim."""
    try:
        zip_file = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise VolumeError(f"{label} is not a valid zip archive (damaged, or not a zip). Create it again.") from error
    root = destination.resolve()
    with zip_file:
        members = [member for member in zip_file.infolist() if not member.is_dir()]
        if len(members) > MAX_ZIP_MEMBERS:
            raise VolumeError(f"{label} holds {len(members):,} files, more than the {MAX_ZIP_MEMBERS:,} allowed.")
        claimed = sum(member.file_size for member in members)
        compressed = sum(member.compress_size for member in members)
        if claimed > MAX_ZIP_UNCOMPRESSED_BYTES or claimed > MAX_ZIP_COMPRESSION_RATIO * max(compressed, 1):
            raise VolumeError(
                f"{label} would unpack to {claimed / 1e6:,.0f} MB from {compressed / 1e6:,.1f} MB "
                f"(limits: {MAX_ZIP_UNCOMPRESSED_BYTES / 1e6:,.0f} MB, compression {MAX_ZIP_COMPRESSION_RATIO}:1); "
                "it is refused as a possible zip bomb. Upload one DICOM series, zipped normally."
            )
        # Every name is checked before anything is written, so a bad archive leaves nothing behind;
        # members are written as plain files, so a symbolic link in the archive never becomes one.
        targets = [_member_target(member.filename, root, label) for member in members]
        written_total = 0
        for member, target in zip(members, targets, strict=True):
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zip_file.open(member) as source, open(target, "wb") as sink:
                    while chunk := source.read(1 << 20):
                        written_total += len(chunk)
                        # The sizes in the directory were checked; this guards against sizes that lie.
                        if written_total > claimed:
                            raise VolumeError(f"{label} unpacks to more than it claims; it is refused.")
                        sink.write(chunk)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
                raise VolumeError(f"{label} is a damaged zip archive ({error}). Create it again.") from error


def _member_target(name: str, root: Path, label: str) -> Path:
    relative = PurePosixPath(name.replace("\\", "/"))
    unsafe = relative.is_absolute() or ".." in relative.parts or (relative.parts and ":" in relative.parts[0])
    target = (root / relative).resolve()
    if unsafe or not target.is_relative_to(root):
        raise VolumeError(
            f"{label} contains an unsafe path ({name!r}: absolute, or leading outside the archive with '..'); "
            "it is refused. Zip the series folder again with an ordinary zip tool."
        )
    return target
