"""Demo pseudo-subjects: plausible, distinct T1-weighted brains made from the MNI152 template nilearn ships.

Each pseudo-subject is the template seen through one random, seeded recipe: a head a few per cent
larger or smaller, larger or smaller lateral ventricles, a smooth displacement of a few mm, a
scanner's smooth bias field and Rician noise, and a small head pose the platform's rigid alignment
must undo. The demo needs several real-looking volumes without a download or a patient's data.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

# Centroid of the template's brain (voxels above 20 % of its maximum), in MNI mm: heads scale and
# turn about it, so a pose change moves the brain in place rather than swinging it out of view.
BRAIN_CENTRE_MNI_MM = (0.0, -22.0, 10.0)
# Centre of the two lateral ventricles' dark voxels in this template, measured at (±14, -15, 15)
# mm. The Gaussian is elongated as they are (x ±34, y -58…+30, z -3…+28 mm): with one radius of
# 18 mm, ventricle scale 1.3 grew their volume by only 11 %, since the horns lie where a radial
# stretch turns into compression; with these radii by 20 %, while still fading before the cortex.
VENTRICLE_CENTRE_MNI_MM = (0.0, -15.0, 15.0)
VENTRICLE_SIGMA_MM = (20.0, 30.0, 16.0)
# Control points per axis: 7 over ~200 mm puts the displacement's bumps ~30 mm apart, gyrus-sized
# and smaller than a lobe, so brains differ in shape without folding.
DISPLACEMENT_CONTROL_POINTS = 7
BIAS_CONTROL_POINTS = 3  # a low-order field, as a receive coil's shading is
# Voxels above this fraction of the maximum are brain; their 90th percentile is white matter.
BRAIN_THRESHOLD_FRACTION = 0.2
WHITE_MATTER_PERCENTILE = 90
# The spatial patterns (displacement, bias, noise) come from their own stream of the seed, so
# changing one drawn amplitude in a test leaves the patterns as they were.
PATTERN_STREAM = 1


@dataclass(frozen=True)
class PseudoSubjectRecipe:
    """The random parameters of one pseudo-subject; the seed also fixes its spatial patterns."""

    seed: int
    head_scale: float  # isotropic, about the brain centre
    ventricle_scale: float  # > 1 enlarges the lateral ventricles
    deformation_mm: float  # RMS length of the smooth displacement over the grid
    bias_amplitude: float  # largest deviation of the multiplicative bias field from 1
    noise_fraction: float  # Rician noise sigma as a fraction of the white-matter intensity
    rotation_deg: tuple[float, float, float]  # about x, y, z; R = Rz · Ry · Rx as in alignment.py
    translation_mm: tuple[float, float, float]

    @classmethod
    def draw(cls, seed: int) -> PseudoSubjectRecipe:
        rng = np.random.default_rng(seed)
        return cls(
            seed=seed,
            head_scale=float(rng.uniform(0.95, 1.05)),  # adult heads vary about ±5 % in length
            ventricle_scale=float(rng.uniform(0.8, 1.3)),  # ventricles vary more, and grow with age
            deformation_mm=float(rng.uniform(2.0, 3.0)),
            bias_amplitude=float(rng.uniform(0.10, 0.15)),
            noise_fraction=float(rng.uniform(0.02, 0.03)),
            rotation_deg=tuple(float(v) for v in rng.uniform(-5.0, 5.0, size=3)),
            translation_mm=tuple(float(v) for v in rng.uniform(-5.0, 5.0, size=3)),
        )

    @property
    def native_world_from_template_world(self) -> np.ndarray:
        """4x4 RAS: the pose alone (no head scale), turning about the brain centre c: p -> R (p - c) + c + t."""
        centre = np.asarray(BRAIN_CENTRE_MNI_MM)
        matrix = np.eye(4)
        matrix[:3, :3] = Rotation.from_euler("xyz", self.rotation_deg, degrees=True).as_matrix()
        matrix[:3, 3] = centre - matrix[:3, :3] @ centre + np.asarray(self.translation_mm)
        return matrix


def make_pseudo_subject(
    template_data: np.ndarray, template_affine: np.ndarray, recipe: PseudoSubjectRecipe, *, voxel_mm: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """The pseudo-subject as (float32 data, 4x4 RAS affine) on a ``voxel_mm`` grid over the template's field of view.

    2 mm by default: the demo's slices are 64² over a 180 mm field of view (2.8 mm pixels), so 2 mm
    keeps every detail the demo shows, and the volume (99 x 117 x 95) aligns and slices fast.
    One backward mapping: each output voxel's world point is taken back through the pose, the head
    scale, the ventricles and the smooth displacement to a template point, sampled linearly once.
    """
    rng = np.random.default_rng([recipe.seed, PATTERN_STREAM])
    template_affine = np.asarray(template_affine, dtype=np.float64)
    template_voxel_mm = np.linalg.norm(template_affine[:3, :3], axis=0)
    extent_mm = (np.array(template_data.shape) - 1) * template_voxel_mm
    shape = tuple(int(n) for n in np.floor(extent_mm / voxel_mm + 1e-6) + 1)
    affine = template_affine.copy()
    affine[:3, :3] = template_affine[:3, :3] * (voxel_mm / template_voxel_mm)

    ijk = np.indices(shape, dtype=np.float64).reshape(3, -1)
    world = affine[:3, :3] @ ijk + affine[:3, 3:]
    centre = np.asarray(BRAIN_CENTRE_MNI_MM)[:, None]
    template_from_native = np.linalg.inv(recipe.native_world_from_template_world)
    points = template_from_native[:3, :3] @ world + template_from_native[:3, 3:]
    points = centre + (points - centre) / recipe.head_scale
    points += _ventricle_displacement(points, recipe.ventricle_scale)
    # Indexed by output voxel, not template point: a random smooth field is as random either way.
    points += _displacement_field(rng, shape, recipe.deformation_mm).reshape(3, -1)

    voxel_from_world = np.linalg.inv(template_affine)
    template_ijk = voxel_from_world[:3, :3] @ points + voxel_from_world[:3, 3:]
    sampled = ndimage.map_coordinates(np.asarray(template_data, dtype=np.float32), template_ijk, order=1, cval=0.0)
    data = sampled.reshape(shape)

    brain = data[data > BRAIN_THRESHOLD_FRACTION * data.max()]
    white_matter = float(np.percentile(brain, WHITE_MATTER_PERCENTILE)) if brain.size else 1.0
    bias = _smooth_field(rng.normal(size=(BIAS_CONTROL_POINTS,) * 3), shape)
    data = data * (1.0 + recipe.bias_amplitude * bias / max(float(np.abs(bias).max()), 1e-12))
    # Rician, as magnitude images are: the background becomes faint Rayleigh noise, not exact zeros.
    sigma = recipe.noise_fraction * white_matter
    real = data + rng.normal(scale=sigma, size=shape)
    imaginary = rng.normal(scale=sigma, size=shape)
    return np.hypot(real, imaginary).astype(np.float32), affine


def _ventricle_displacement(points: np.ndarray, ventricle_scale: float) -> np.ndarray:
    """(1/s - 1)(x - c) exp(-Σ (x_i - c_i)² / 2σ_i²): near c the template is read at r/s, so s > 1 enlarges."""
    offset = points - np.asarray(VENTRICLE_CENTRE_MNI_MM)[:, None]
    weight = np.exp(-0.5 * np.sum((offset / np.asarray(VENTRICLE_SIGMA_MM)[:, None]) ** 2, axis=0))
    return (1.0 / ventricle_scale - 1.0) * offset * weight


def _displacement_field(rng: np.random.Generator, shape: tuple[int, ...], rms_mm: float) -> np.ndarray:
    """(3, *shape) mm: random control points, upsampled smoothly, scaled to the RMS vector length."""
    coarse = rng.normal(size=(3,) + (DISPLACEMENT_CONTROL_POINTS,) * 3)
    field = np.stack([_smooth_field(component, shape) for component in coarse])
    rms = math.sqrt(float(np.mean(np.sum(field**2, axis=0))))
    return field * (rms_mm / max(rms, 1e-12))


def _smooth_field(coarse: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """What ``ndimage.zoom(coarse, order=3)`` gives, one axis at a time: ~100x cheaper in 3D.

    Cubic-spline zoom is linear and separable, so zooming an identity matrix along one axis yields
    that axis's (n, k) weights, and three small matrix products do the rest."""
    field = coarse
    for axis, size in enumerate(shape):
        points = coarse.shape[axis]
        weights = ndimage.zoom(np.eye(points), (size / points, 1), order=3)
        field = np.moveaxis(np.tensordot(weights, field, axes=([1], [axis])), 0, axis)
    return field


def brain_difference(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """RMS of (a - b) inside the mask over the RMS of a there: 0 for equal brains, ~0.1 for a 10 % change."""
    a_in, b_in = np.asarray(a, dtype=np.float64)[mask], np.asarray(b, dtype=np.float64)[mask]
    return math.sqrt(float(np.mean((a_in - b_in) ** 2)) / float(np.mean(a_in**2)))


def write_pseudo_subjects(
    template_path: Path,
    folder: Path,
    *,
    count: int,
    first_seed: int = 0,
    voxel_mm: float = 2.0,
    on_written: Callable[[int, Path], None] | None = None,
) -> list[Path]:
    """Write ``pseudo-subject-NN.nii.gz`` for seeds first_seed … first_seed + count - 1 (NN = seed + 1).

    A cache: a file that exists is reused as it is (the demo calls this every run), so the name is
    the only key; use another folder for another voxel size. ``on_written(NN, path)`` follows each
    file newly written. Each is written under a temporary name and renamed, so a killed run never
    leaves half a file under the real name.
    """
    import nibabel as nib  # imported here: only writing needs it

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    template: tuple[np.ndarray, np.ndarray] | None = None
    paths = []
    for seed in range(first_seed, first_seed + count):
        number = seed + 1
        path = folder / f"pseudo-subject-{number:02d}.nii.gz"
        paths.append(path)
        if path.exists():
            continue
        if template is None:  # loaded only when some file is missing
            image = nib.load(template_path)
            template = (image.get_fdata(dtype=np.float32), image.affine)
        data, affine = make_pseudo_subject(*template, PseudoSubjectRecipe.draw(seed), voxel_mm=voxel_mm)
        subject = nib.Nifti1Image(data, affine)
        subject.header["descrip"] = b""
        subject.set_qform(affine, code="scanner")
        subject.set_sform(affine, code="scanner")
        # The temporary name keeps the .nii.gz ending: nibabel picks the format from it.
        partial = folder / f".partial-{os.getpid()}-{path.name}"
        nib.save(subject, partial)
        os.replace(partial, path)
        if on_written is not None:
            on_written(number, path)
    return paths
