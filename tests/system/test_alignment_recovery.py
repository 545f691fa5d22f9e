"""Rigid alignment to the MNI152 template: known transforms are recovered, corrections compose as documented."""

import numpy as np
import pytest
import SimpleITK as sitk

from generator.ml.alignment import (
    align_to_template,
    brain_mask_in_native,
    load_template,
    sitk_transform_from_ras_matrix,
)
from generator.ml.volumes import LoadedVolume, sitk_image_from_ras
from tests.ml.alignment_cases import CENTRE, TRUE, rigid


def grid_around(centre_world: np.ndarray, spacing: tuple[float, float, float], shape: tuple[int, int, int]):
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = centre_world[:3] - np.asarray(spacing) * (np.asarray(shape) - 1) / 2
    return affine


def resample_template(
    image: sitk.Image, affine: np.ndarray, shape, interpolator=sitk.sitkLinear, true: np.ndarray = TRUE
) -> np.ndarray:
    """The template image as the scanner would record it on the grid (shape, affine)."""
    reference = sitk_image_from_ras(np.zeros(shape, np.uint8), affine)
    transform = sitk_transform_from_ras_matrix(np.linalg.inv(true))  # Resample pulls from template space
    resampled = sitk.Resample(image, reference, transform, interpolator, 0.0)
    return sitk.GetArrayFromImage(resampled).transpose(2, 1, 0)


def moved_template() -> LoadedVolume:
    template, _ = load_template()
    shape = (197, 233, 189)
    affine = grid_around(TRUE @ [0.0, -18.0, 22.0, 1.0], (1.0, 1.0, 1.0), shape)
    data = resample_template(template, affine, shape).astype(np.float32)
    return LoadedVolume(data=data, affine=affine, voxel_size_mm=(1.0, 1.0, 1.0), source_format="nifti")


def head_with_skull_neck_noise_and_bias(
    seed: int = 0, true: np.ndarray = TRUE, fov_centre_z_mm: float = -10.0
) -> LoadedVolume:
    """The moved template with a bright skull and scalp, a neck, Rician-like noise and a smooth
    bias field, on a 0.94 × 0.94 × 1.5 mm grid centred at template height ``fov_centre_z_mm``
    (the brain's centre is near +10 mm), so it reaches well below the brain."""
    template, brain_mask = load_template()
    spacing, shape = (0.94, 0.94, 1.5), (256, 256, 160)
    affine = grid_around(true @ [0.0, -18.0, fov_centre_z_mm, 1.0], spacing, shape)
    data = resample_template(template, affine, shape, true=true).astype(np.float32)
    brain = resample_template(brain_mask, affine, shape, sitk.sitkNearestNeighbor, true=true).astype(bool)
    # Template-space coordinates of every voxel, to draw head structures around the brain.
    template_from_voxel = (np.linalg.inv(true) @ affine).astype(np.float32)
    indices = np.indices(shape, dtype=np.float32).reshape(3, -1)
    x, y, z = (template_from_voxel[:3, :3] @ indices + template_from_voxel[:3, 3:]).reshape(3, *shape)
    radius = np.sqrt((x / 76) ** 2 + ((y + 18) / 100) ** 2 + ((z - 12) / 80) ** 2)
    data[(radius > 1.0) & (radius < 1.12) & ~brain] = 0.9  # skull marrow, bright on T1
    data[(radius >= 1.12) & (radius < 1.17)] = 0.6  # scalp
    data[(np.abs(x) < 45) & (y > -70) & (y < 20) & (z < -50) & (radius > 0.6) & ~brain] = 0.55  # neck
    bias = 1.0 + 0.25 * x / 90 + 0.15 * z / 90 - 0.1 * ((y + 18) / 100) ** 2
    rng = np.random.default_rng(seed)
    noise = 0.04
    data = np.sqrt((data * bias + rng.normal(0, noise, shape)) ** 2 + rng.normal(0, noise, shape) ** 2)
    return LoadedVolume(data=data.astype(np.float32), affine=affine, voxel_size_mm=spacing, source_format="nifti")


def residual(found: np.ndarray, true: np.ndarray = TRUE) -> tuple[float, float]:
    """Rotation angle (degrees) of found vs true, and how far the basal-ganglia centre lands off (mm)."""
    error = np.linalg.inv(true) @ found
    angle = np.degrees(np.arccos(np.clip((np.trace(error[:3, :3]) - 1) / 2, -1.0, 1.0)))
    return float(angle), float(np.linalg.norm((error @ CENTRE - CENTRE)[:3]))


@pytest.fixture(scope="module")
def moved_case():
    volume = moved_template()
    return volume, align_to_template(volume)


@pytest.fixture(scope="module")
def head_case():
    volume = head_with_skull_neck_noise_and_bias()
    return volume, align_to_template(volume)


def test_recovers_a_known_transform_of_the_template(moved_case):
    _, alignment = moved_case
    angle, centre_off = residual(alignment.native_world_from_template_world)
    assert angle <= 1.0
    assert centre_off <= 1.0
    assert alignment.rotation_deg == pytest.approx((6.0, -4.0, 3.0), abs=1.0)
    assert alignment.translation_mm == pytest.approx((8.0, -5.0, 10.0), abs=1.0)
    assert alignment.iterations > 0
    assert alignment.final_metric < 0


def test_recovers_a_known_transform_despite_skull_neck_noise_and_bias(head_case):
    _, alignment = head_case
    angle, centre_off = residual(alignment.native_world_from_template_world)
    assert angle <= 1.0
    assert centre_off <= 1.0


def test_recovers_a_nodded_head_in_a_field_of_view_full_of_neck():
    # 18° of rotation and 40 mm more neck: the centre-of-mass start alone lands 2-3 cm low and the
    # descent alone stalls there; the coarse search brings it within reach.
    true = rigid((12.0, -8.0, 10.0), (20.0, -30.0, 25.0))
    volume = head_with_skull_neck_noise_and_bias(seed=1, true=true, fov_centre_z_mm=-50.0)
    angle, centre_off = residual(align_to_template(volume).native_world_from_template_world, true)
    assert angle <= 1.0
    assert centre_off <= 1.0


def test_the_same_seed_gives_the_same_alignment(moved_case):
    volume, alignment = moved_case
    again = align_to_template(volume, seed=alignment.seed)
    # Threads may sum in another order; anything beyond rounding would be a real difference.
    assert again.native_world_from_template_world == pytest.approx(alignment.native_world_from_template_world, abs=1e-6)


def test_voxel_from_template_world_reaches_the_volume_grid(head_case):
    volume, alignment = head_case
    expected = np.linalg.inv(volume.affine) @ alignment.native_world_from_template_world
    assert alignment.voxel_from_template_world == pytest.approx(expected)
    centre_in_scanner_mm = volume.affine @ alignment.voxel_from_template_world @ CENTRE
    assert np.linalg.norm((centre_in_scanner_mm - TRUE @ CENTRE)[:3]) <= 1.0


def test_brain_mask_in_native_covers_the_brain(head_case):
    volume, alignment = head_case
    _, template_mask = load_template()
    true_brain = resample_template(template_mask, volume.affine, volume.shape, sitk.sitkNearestNeighbor) > 0
    mask = brain_mask_in_native(volume, alignment)
    assert mask.shape == volume.shape
    assert mask.dtype == bool
    dice = 2 * np.sum(mask & true_brain) / (mask.sum() + true_brain.sum())
    assert dice > 0.95
    # Skull and neck are bright; the brain mask keeps them out of intensity normalisation.
    assert volume.data[mask].mean() < volume.data[~mask & (volume.data > 0.8)].mean()
