"""The augmentation grid's indexing and the slicer's geometry, display convention and kernel accuracy."""

import numpy as np
import pytest

from generator.ml.grid import PAPER_GRID, AugmentationGrid, SliceParams
from generator.ml.slicing import (
    DEFAULT_CENTRE_MM,
    normalise_intensity,
    sample_slices,
    sample_slices_reference,
)

# A 1 mm voxel grid parallel to the world axes: voxel (i, j, k) is world (i - 40, j - 58, k - 14) mm,
# so the default centre (0, -18, 6) is voxel (40, 40, 20).
SHAPE = (81, 81, 41)
VOXEL_FROM_WORLD = np.array([[1.0, 0, 0, 40], [0, 1.0, 0, 58], [0, 0, 1.0, 14], [0, 0, 0, 1]])
CENTRE = np.array(DEFAULT_CENTRE_MM)
MATRIX, FOV = 64, 64.0  # 1 mm pixels
HALF = (MATRIX - 1) / 2


def near_centre(right_mm: float, anterior_mm: float, superior_mm: float) -> np.ndarray:
    return CENTRE + np.array([right_mm, anterior_mm, superior_mm])


def world_grid() -> np.ndarray:
    """World mm of every voxel centre, [I, J, K, 3]."""
    indices = np.stack(np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij"), axis=-1).astype(float)
    return indices - VOXEL_FROM_WORLD[:3, 3]


def marker_volume(position_mm: np.ndarray, sigma_mm: float = 1.2) -> np.ndarray:
    """Background -1 with one bright Gaussian blob (peak +1) at a world position.

    Pixel centres sit half a millimetre off the centre's grid, so a sampled blob peaks near +0.4:
    "visible" below means a maximum above 0, "absent" a maximum below -0.9.
    """
    squared = ((world_grid() - position_mm) ** 2).sum(axis=-1)
    return (-1.0 + 2.0 * np.exp(-squared / (2 * sigma_mm**2))).astype(np.float32)


def rotation(lr: float, ap: float, cc: float) -> np.ndarray:
    """Rz(cc) · Ry(ap) · Rx(lr), written out here independently of the code under test."""
    a, b, c = np.deg2rad([lr, ap, cc])
    about_x = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    about_y = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    about_z = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return about_z @ about_y @ about_x


def slice_of(volume: np.ndarray, lr=0.0, ap=0.0, cc=0.0, offset=0.0, flip=False, **kwargs) -> np.ndarray:
    params = np.array([[lr, ap, cc, offset, float(flip)]])
    return sample_slices(volume, VOXEL_FROM_WORLD, params, matrix_size=MATRIX, fov_mm=FOV, **kwargs)[0]


def bright_centroid(image: np.ndarray) -> tuple[float, float]:
    """(row, column) centroid of the marker; fails the test if no marker is visible."""
    weight = image + 1.0
    assert image.max() > 0.0, "marker not visible in the slice"
    rows, columns = np.indices(image.shape)
    return (rows * weight).sum() / weight.sum(), (columns * weight).sum() / weight.sum()


# --- the grid -----------------------------------------------------------------------------------


def test_paper_grid_has_48510_distinct_entries():
    assert len(PAPER_GRID) == PAPER_GRID.slices_per_volume == 21 * 21 * 11 * 5 * 2 == 48_510
    params = PAPER_GRID.params_array(np.arange(len(PAPER_GRID)))
    assert params.shape == (48_510, 5)
    assert len(np.unique(params, axis=0)) == 48_510
    assert (params.min(axis=0) == [-10, -10, -5, -4, 0]).all()
    assert (params.max(axis=0) == [10, 10, 5, 4, 1]).all()


def test_every_index_round_trips():
    indices = np.arange(len(PAPER_GRID))
    assert np.array_equal(PAPER_GRID.indices(PAPER_GRID.params_array(indices)), indices)
    for index in (0, 1, 9, 10, 12_345, 48_509):
        assert PAPER_GRID.index(PAPER_GRID.params(index)) == index


def test_index_order_is_flip_then_offset_then_cc_ap_lr():
    assert PAPER_GRID.params(0) == SliceParams(-10.0, -10.0, -5.0, -4.0, False)
    assert PAPER_GRID.params(1) == SliceParams(-10.0, -10.0, -5.0, -4.0, True)
    assert PAPER_GRID.params(2) == SliceParams(-10.0, -10.0, -5.0, -2.0, False)
    assert PAPER_GRID.params(10) == SliceParams(-10.0, -10.0, -4.0, -4.0, False)
    assert PAPER_GRID.params(110) == SliceParams(-10.0, -9.0, -5.0, -4.0, False)
    assert PAPER_GRID.params(2310) == SliceParams(-9.0, -10.0, -5.0, -4.0, False)
    assert PAPER_GRID.index((0, 0, 0, 0, False)) == 10 * 2310 + 10 * 110 + 5 * 10 + 2 * 2


def test_bad_indices_and_params_raise():
    for bad in (-1, 48_510, 10**9):
        with pytest.raises(IndexError, match="out of range"):
            PAPER_GRID.params(bad)
    with pytest.raises(IndexError):
        PAPER_GRID.params_array(np.array([0, 48_510]))
    with pytest.raises(TypeError):
        PAPER_GRID.params(1.0)
    with pytest.raises(ValueError, match=r"lr_deg=0\.5 is not on the grid"):
        PAPER_GRID.index((0.5, 0, 0, 0, False))
    with pytest.raises(ValueError, match="offset_mm"):
        PAPER_GRID.index((0, 0, 0, 1.0, False))
    with pytest.raises(ValueError, match="cc_deg"):
        PAPER_GRID.index((0, 0, 6, 0, False))


def test_custom_grids_and_invalid_grids():
    grid = AugmentationGrid(
        lr_range_deg=(-1, 1),
        ap_range_deg=(0, 0),
        cc_range_deg=(-0.5, 0.5),
        cc_step_deg=0.5,
        offsets_mm=(0.0,),
        include_flips=False,
    )
    assert len(grid) == 3 * 1 * 3
    assert grid.params(4) == SliceParams(0.0, 0.0, 0.0, 0.0, False)
    with pytest.raises(ValueError, match="flip"):
        grid.index((0, 0, 0, 0, True))
    with pytest.raises(ValueError, match="whole number"):
        AugmentationGrid(lr_range_deg=(-10, 10), lr_step_deg=3)
    with pytest.raises(ValueError, match="low to high"):
        AugmentationGrid(cc_range_deg=(5, -5))


# --- geometry -------------------------------------------------------------------------------------


def test_unrotated_slice_is_the_direct_axial_section():
    rng = np.random.default_rng(1)
    volume = rng.uniform(-1, 1, SHAPE).astype(np.float32)
    # A half-millimetre shift puts every pixel centre (k - 31.5 mm from the centre) on a voxel centre.
    centre = (0.5, -17.5, 6.0)
    image = slice_of(volume, centre_mm=centre)
    x_of_column = centre[0] + (HALF - np.arange(MATRIX))  # columns run patient right -> left
    y_of_row = centre[1] + (HALF - np.arange(MATRIX))  # rows run anterior -> posterior
    i_of_column = np.rint(x_of_column + 40).astype(int)
    j_of_row = np.rint(y_of_row + 58).astype(int)
    expected = volume[:, :, 6 + 14][np.ix_(i_of_column, j_of_row)].T
    np.testing.assert_allclose(image, expected, atol=1e-5)
    # Two millimetres up is two voxel layers up.
    up = slice_of(volume, offset=2.0, centre_mm=centre)
    np.testing.assert_allclose(up, volume[:, :, 22][np.ix_(i_of_column, j_of_row)].T, atol=1e-5)


def test_flip_mirrors_the_sampled_slice_exactly():
    rng = np.random.default_rng(2)
    volume = rng.uniform(-1, 1, SHAPE).astype(np.float32)
    for angles in [(0, 0, 0, 0), (7, -3, 2, 2), (-10, 10, -5, -4)]:
        unflipped = slice_of(volume, *angles)
        flipped_alone = slice_of(volume, *angles, flip=True)
        assert np.array_equal(flipped_alone, unflipped[:, ::-1])
        # Sampled together, the mirror is copied from its twin: still exact.
        both = sample_slices(
            volume, VOXEL_FROM_WORLD, np.array([[*angles, 1.0], [*angles, 0.0]]), matrix_size=MATRIX, fov_mm=FOV
        )
        assert np.array_equal(both[1], unflipped)
        assert np.array_equal(both[0], unflipped[:, ::-1])
        assert not np.array_equal(unflipped, unflipped[:, ::-1])


def test_display_convention_right_is_left_and_anterior_is_up():
    right = bright_centroid(slice_of(marker_volume(near_centre(20, 0, 0))))
    assert right[1] < MATRIX / 2 and right[1] == pytest.approx(HALF - 20, abs=0.1)
    assert right[0] == pytest.approx(HALF, abs=0.1)
    anterior = bright_centroid(slice_of(marker_volume(near_centre(0, 20, 0))))
    assert anterior[0] < MATRIX / 2 and anterior[0] == pytest.approx(HALF - 20, abs=0.1)
    # Flipped, the patient's right moves to the right half.
    assert bright_centroid(slice_of(marker_volume(near_centre(20, 0, 0)), flip=True))[1] > MATRIX / 2


def test_cc_rotation_moves_a_marker_where_the_convention_says():
    marker = near_centre(25, 0, 0)
    row, column = bright_centroid(slice_of(marker_volume(marker), cc=5.0))
    # +5° about z turns the plane's right axis to (cos 5°, sin 5°, 0) and its anterior axis to (-sin 5°, cos 5°, 0).
    along_right = 25 * np.cos(np.deg2rad(5))
    along_anterior = -25 * np.sin(np.deg2rad(5))
    assert column == pytest.approx(HALF - along_right, abs=0.15)
    assert row == pytest.approx(HALF - along_anterior, abs=0.15)  # about 2.2 px below the centre row


def test_lr_rotation_tilts_the_plane_anterior_edge_up():
    # 25 mm along the anterior axis of a plane tilted +10° about x: (0, cos 10°, sin 10°).
    marker = CENTRE + 25 * np.array([0, np.cos(np.deg2rad(10)), np.sin(np.deg2rad(10))])
    volume = marker_volume(marker)
    row, column = bright_centroid(slice_of(volume, lr=10.0))
    assert (row, column) == (pytest.approx(HALF - 25, abs=0.15), pytest.approx(HALF, abs=0.15))
    # 4.3 mm above the unrotated plane and 8.6 mm off the -10° plane: not in either.
    assert slice_of(volume).max() < -0.9
    assert slice_of(volume, lr=-10.0).max() < -0.9


@pytest.mark.parametrize("angles", [(0, 8, 0), (6, -4, 3), (-10, 10, -5)])
def test_combined_rotation_and_offset_place_a_marker_analytically(angles):
    rotated = rotation(*angles)
    offset, along_right, along_anterior = 2.0, 14.0, -9.0
    marker = CENTRE + offset * rotated[:, 2] + along_right * rotated[:, 0] + along_anterior * rotated[:, 1]
    row, column = bright_centroid(slice_of(marker_volume(marker), *angles, offset=offset))
    assert row == pytest.approx(HALF - along_anterior, abs=0.15)
    assert column == pytest.approx(HALF - along_right, abs=0.15)


def test_offsets_move_along_the_rotated_normal():
    volume = marker_volume(near_centre(10, 10, 4))
    assert slice_of(volume, offset=4.0).max() > 0.0
    assert slice_of(volume, offset=0.0).max() < -0.9
    assert slice_of(volume, offset=-4.0).max() < -0.9
    # Tilted 10° about x, the +4 mm section sits 4 mm along (0, -sin 10°, cos 10°), not straight up.
    normal = rotation(10, 0, 0)[:, 2]
    tilted = marker_volume(CENTRE + 4 * normal + [0, 12, 12 * np.tan(np.deg2rad(10))])
    assert slice_of(tilted, lr=10.0, offset=4.0).max() > 0.0
    assert slice_of(tilted, lr=10.0, offset=0.0).max() < -0.9
    assert slice_of(tilted, offset=4.0).max() < 0.0


def test_outside_the_volume_is_background():
    volume = np.full(SHAPE, 0.25, dtype=np.float32)
    image = sample_slices(volume, VOXEL_FROM_WORLD, np.zeros((1, 5)), matrix_size=64, fov_mm=180.0)[0]
    assert image[0, 0] == image[-1, -1] == -1.0  # 90 mm out from the centre, beyond the 81 mm box
    assert image[32, 32] == pytest.approx(0.25)


def test_numba_kernel_matches_scipy_reference():
    rng = np.random.default_rng(3)
    # Stored [z, x, y] with an oblique, anisotropic matrix, so neither axis order nor alignment is assumed.
    volume = rng.uniform(-1, 1, (30, 70, 60)).astype(np.float32)
    world_from_voxel = np.eye(4)
    world_from_voxel[:3, :3] = rotation(8, -5, 20)[:, [2, 0, 1]] * [1.8, 1.1, 1.3]
    world_from_voxel[:3, 3] = CENTRE - world_from_voxel[:3, :3] @ (np.array(volume.shape) / 2)
    voxel_from_world = np.linalg.inv(world_from_voxel)
    indices = rng.choice(len(PAPER_GRID), 60, replace=False)
    params = np.concatenate([PAPER_GRID.params_array(indices), PAPER_GRID.params_array(indices[:5] ^ 1)])
    off_grid = np.column_stack([rng.uniform(-30, 30, (8, 3)), rng.uniform(-8, 8, 8), rng.integers(0, 2, 8)])
    params = np.concatenate([params, off_grid])
    # A 100 mm field leaves part of each frame outside the volume, so the boundary is exercised too.
    fast = sample_slices(volume, voxel_from_world, params, matrix_size=48, fov_mm=100.0)
    slow = sample_slices_reference(volume, voxel_from_world, params, matrix_size=48, fov_mm=100.0)
    assert fast.dtype == np.float32 and fast.shape == (len(params), 48, 48)
    assert 0.05 < (slow == -1.0).mean() < 0.9
    np.testing.assert_allclose(fast, slow, atol=1e-4, rtol=0)


# --- intensity -----------------------------------------------------------------------------------


def test_normalise_intensity_maps_percentiles_to_plus_minus_one_and_clips():
    rng = np.random.default_rng(4)
    volume = rng.gamma(4.0, 50.0, (20, 20, 20))
    mask = np.ones(volume.shape, dtype=bool)
    normalised = normalise_intensity(volume, mask, low_percentile=1.0, high_percentile=99.0)
    assert normalised.dtype == np.float32 and normalised.shape == volume.shape
    low, high = np.percentile(volume, [1.0, 99.0])
    middle = (volume > low) & (volume < high)
    expected = (volume[middle] - low) / (high - low) * 2 - 1
    np.testing.assert_allclose(normalised[middle], expected, atol=1e-6)
    assert (normalised[volume <= low] == -1).all() and (normalised[volume >= high] == 1).all()
    assert normalised.min() == -1 and normalised.max() == 1


def test_normalise_intensity_takes_percentiles_over_the_foreground():
    rng = np.random.default_rng(5)
    volume = rng.normal(2.0, 1.0, (40, 40, 40))  # air: noise near zero, most of the box
    volume[10:30, 10:30, 10:30] = rng.uniform(300, 700, (20, 20, 20))
    normalised = normalise_intensity(volume)
    tissue = volume[10:30, 10:30, 10:30]
    low, high = np.percentile(tissue, [0.5, 99.5])
    assert (normalised[:5] == -1).all()
    np.testing.assert_allclose(
        normalised[10:30, 10:30, 10:30], np.clip((tissue - low) / (high - low) * 2 - 1, -1, 1), atol=1e-6
    )
    with pytest.raises(ValueError, match="flat"):
        normalise_intensity(np.ones((4, 4, 4)), np.ones((4, 4, 4), dtype=bool))
