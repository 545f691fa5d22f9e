"""The memorisation screen and the data-copying statistic, on phantom 'subjects' sliced over a small grid."""

import numpy as np
import pytest
from scipy import ndimage

from generator.ml.grid import PAPER_GRID, AugmentationGrid
from generator.ml.screening import (
    ScreenIndex,
    SliceKey,
    data_copying_statistic,
    image_features,
    screen,
    screening_grid_indices,
    threshold_from_held_out,
    threshold_without_held_out,
)
from generator.ml.slicing import DEFAULT_CENTRE_MM, sample_slices

# ±4°, ±4°, ±2° in 1° steps, three sections, flips: 2,430 slices, the paper grid's structure in miniature.
GRID = AugmentationGrid(lr_range_deg=(-4, 4), ap_range_deg=(-4, 4), cc_range_deg=(-2, 2), offsets_mm=(-2.0, 0.0, 2.0))
PHANTOM_SHAPE = (64, 72, 64)
PHANTOM_VOXEL_MM = 3.0


def phantom_subject(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A head-like volume of its own: ellipsoid with a bright rim, textured tissue, two dark ventricles."""
    rng = np.random.default_rng(seed)
    centre = np.array(DEFAULT_CENTRE_MM)
    origin = centre - PHANTOM_VOXEL_MM * (np.array(PHANTOM_SHAPE) - 1) / 2
    axes = [origin[axis] + PHANTOM_VOXEL_MM * np.arange(PHANTOM_SHAPE[axis]) for axis in range(3)]
    offset_mm = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1) - centre
    radius = np.sqrt(((offset_mm / (np.array([68, 85, 70]) * rng.uniform(0.92, 1.08, 3))) ** 2).sum(-1))
    texture = ndimage.gaussian_filter(rng.standard_normal(PHANTOM_SHAPE), 2.0)
    volume = np.where(radius < 1.0, 0.3 + 0.25 * texture / texture.std(), -1.0)
    volume = np.where((radius >= 0.9) & (radius < 1.0), 0.8, volume)
    for side in (-1, 1):
        ventricle_mm = np.array([side * rng.uniform(8, 16), rng.uniform(-5, 15), 0]) + rng.normal(0, 2, 3)
        extent_mm = np.array([6, 22, 14]) * rng.uniform(0.8, 1.2, 3)
        volume = np.where(np.sqrt((((offset_mm - ventricle_mm) / extent_mm) ** 2).sum(-1)) < 1, -0.6, volume)
    voxel_from_world = np.diag([1 / PHANTOM_VOXEL_MM] * 3 + [1.0])
    voxel_from_world[:3, 3] = -origin / PHANTOM_VOXEL_MM
    return np.clip(volume, -1, 1).astype(np.float32), voxel_from_world


@pytest.fixture(scope="module")
def subjects() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    # A is trained on; B and C are held out; D stands for a generator's genuinely new brains.
    return {name: phantom_subject(seed) for seed, name in enumerate("ABCD")}


def cut(subjects, name: str, grid_indices: np.ndarray) -> np.ndarray:
    volume, voxel_from_world = subjects[name]
    return sample_slices(volume, voxel_from_world, GRID.params_array(grid_indices), matrix_size=64)


@pytest.fixture(scope="module")
def index(subjects) -> ScreenIndex:
    kept = screening_grid_indices(GRID)
    return ScreenIndex.from_images(cut(subjects, "A", kept), [SliceKey("A", int(i)) for i in kept])


@pytest.fixture(scope="module")
def held_out(subjects) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {name: cut(subjects, name, rng.choice(len(GRID), 150, replace=False)) for name in "BC"}


@pytest.fixture(scope="module")
def skipped_slices(subjects) -> tuple[np.ndarray, np.ndarray]:
    """Training slices the index does NOT hold (between its 2° steps): a memorising generator's output."""
    skipped = np.setdiff1d(np.arange(len(GRID)), screening_grid_indices(GRID))
    chosen = np.random.default_rng(2).choice(skipped, 60, replace=False)
    return chosen, cut(subjects, "A", chosen)


def test_image_features_are_area_averages_for_any_size():
    blocks = np.kron(np.arange(256, dtype=np.float32).reshape(16, 16) / 256, np.ones((4, 4), np.float32))
    assert np.allclose(image_features(blocks)[0], np.arange(256) / 256, atol=1e-6)
    odd = np.random.default_rng(0).uniform(-1, 1, (3, 40, 40)).astype(np.float32)
    assert np.allclose(image_features(odd).mean(axis=1), odd.mean(axis=(1, 2)), atol=1e-5)
    assert image_features(np.full((64, 64), 5.0)).max() == 1.0  # clipped to the display range first


def test_screening_subset_of_the_paper_grid_keeps_every_section_and_flip_and_passes_through_zero():
    kept = screening_grid_indices(PAPER_GRID)
    assert len(kept) == 11 * 11 * 5 * 5 * 2 == 6050
    params = PAPER_GRID.params_array(kept)
    assert PAPER_GRID.index((0.0, 0.0, 0.0, 0.0, False)) in set(kept.tolist())
    assert set(params[:, 0]) == set(np.arange(-10.0, 11.0, 2.0))
    assert set(params[:, 2]) == {-4.0, -2.0, 0.0, 2.0, 4.0}
    assert set(params[:, 3]) == set(PAPER_GRID.offsets_mm) and set(params[:, 4]) == {0.0, 1.0}


def test_screen_excludes_exact_and_noised_copies_and_keeps_other_subjects(subjects, index, held_out, skipped_slices):
    threshold = threshold_from_held_out(index, np.concatenate(list(held_out.values())))
    chosen, copies = skipped_slices
    noised = copies + np.random.default_rng(3).normal(0, 0.05, copies.shape).astype(np.float32)
    genuine = cut(subjects, "D", np.random.default_rng(4).choice(len(GRID), 60, replace=False))

    for results in (screen(index, copies, threshold), screen(index, noised, threshold)):
        assert all(result.excluded for result in results)
        for result, grid_index in zip(results, chosen, strict=True):
            assert result.nearest_key.source_name == "A"
            assert f"near-copy of A grid slice {result.nearest_key.grid_index}" in result.reason
            # The named slice is the copy's grid neighbour: every rotation within one step.
            copied, named = GRID.params(int(grid_index)), GRID.params(result.nearest_key.grid_index)
            assert max(abs(a - b) for a, b in zip(copied[:3], named[:3], strict=True)) <= 1.0
    assert not any(result.excluded for result in screen(index, genuine, threshold))
    assert all(result.reason == "" for result in screen(index, genuine, threshold))


def test_exact_copy_of_an_indexed_slice_is_at_distance_zero(index, subjects):
    grid_index = int(screening_grid_indices(GRID)[17])
    distances, keys = index.nearest(cut(subjects, "A", np.array([grid_index])))
    assert distances[0] == pytest.approx(0.0, abs=1e-3) and keys[0] == SliceKey("A", grid_index)
    assert screen(index, np.zeros((0, 64, 64), np.float32), 0.1) == []


def test_threshold_comes_from_the_held_out_distances(index, held_out):
    both = np.concatenate(list(held_out.values()))
    threshold = threshold_from_held_out(index, both)
    distances, _ = index.nearest(both)
    assert float(threshold) == pytest.approx(np.quantile(distances, 0.01))
    assert threshold < np.median(distances) and threshold.basis == "held_out"
    assert "held-out" in threshold.note
    # Other held-out subjects, another threshold: it is set by the data, not by a constant.
    only_b, only_c = threshold_from_held_out(index, held_out["B"]), threshold_from_held_out(index, held_out["C"])
    assert only_b != only_c
    assert threshold_from_held_out(index, both, quantile=0.2) > threshold
    assert float(threshold_from_held_out(index, [held_out["B"], held_out["C"]])) == float(threshold)
    with pytest.raises(ValueError, match="at least 20"):
        threshold_from_held_out(index, held_out["B"][:5])


def test_fallback_threshold_without_held_out_is_marked_and_still_separates(subjects, index, skipped_slices):
    threshold = threshold_without_held_out(index, grid=GRID)
    assert threshold.basis == "training_fallback" and threshold.note.startswith("FALLBACK")
    _, copies = skipped_slices
    noised = copies + np.random.default_rng(5).normal(0, 0.05, copies.shape).astype(np.float32)
    genuine = cut(subjects, "D", np.arange(0, len(GRID), 40))
    assert all(result.excluded for result in screen(index, noised, threshold))
    assert "fallback threshold" in screen(index, copies[:1], threshold)[0].reason
    assert not any(result.excluded for result in screen(index, genuine, threshold))
    with pytest.raises(ValueError, match="grid indices"):
        threshold_without_held_out(ScreenIndex(np.zeros((3, 4)), [("x", 10**9)] * 3), grid=GRID)


def test_fallback_threshold_is_not_fooled_by_a_symmetric_brain(subjects):
    # In a symmetric volume a flipped slice IS the slice at (lr, −ap, −cc): distance 0, far off in the grid.
    volume, voxel_from_world = subjects["A"]
    symmetric = {"S": ((volume + volume[::-1]) / 2, voxel_from_world)}  # the phantom's x = 0 is its array centre
    kept = screening_grid_indices(GRID)
    index = ScreenIndex.from_images(cut(symmetric, "S", kept), [SliceKey("S", int(i)) for i in kept])
    skipped = np.setdiff1d(np.arange(len(GRID)), kept)[::20]
    copy_distances, _ = index.nearest(cut(symmetric, "S", skipped))
    assert threshold_without_held_out(index, grid=GRID) > 1.5 * copy_distances.max()


def test_pca_index_excludes_the_same_copies_and_survives_save_and_load(
    tmp_path, subjects, index, held_out, skipped_slices
):
    kept = screening_grid_indices(GRID)
    reduced = ScreenIndex.from_images(cut(subjects, "A", kept), [SliceKey("A", int(i)) for i in kept], pca_dims=32)
    _, copies = skipped_slices
    threshold = threshold_from_held_out(reduced, np.concatenate(list(held_out.values())))
    assert all(result.excluded for result in screen(reduced, copies, threshold))
    distances, keys = reduced.nearest(copies)
    assert np.allclose(distances, index.nearest(copies)[0], atol=0.01)  # a projection: about the same distances
    assert reduced.memory_bytes < index.memory_bytes
    reduced.save(tmp_path / "index.npz")
    loaded = ScreenIndex.load(tmp_path / "index.npz")
    loaded_distances, loaded_keys = loaded.nearest(copies)
    assert loaded_keys == keys and np.allclose(loaded_distances, distances, atol=1e-6)


def gaussian_features(rows: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, 8)).astype(np.float32)


def test_data_copying_statistic_is_strongly_negative_for_copies_of_the_training_set():
    train, held_out = gaussian_features(2000, 0), gaussian_features(500, 1)
    copies = train[np.random.default_rng(2).choice(len(train), 500, replace=False)]
    result = data_copying_statistic(train, held_out, copies + 0.01 * gaussian_features(500, 3), cells=5, seed=0)
    assert result.value < -5 and result.cells_used > 0
    assert "C_T" in result.note


def test_data_copying_statistic_is_near_zero_for_samples_of_the_held_out_distribution():
    train, held_out, generated = gaussian_features(2000, 0), gaussian_features(500, 1), gaussian_features(500, 4)
    result = data_copying_statistic(train, held_out, generated, cells=10, seed=0)
    assert abs(result.value) < 2 and result.cells_used >= 5
    again = data_copying_statistic(train, held_out, generated, cells=10, seed=0)
    assert again.value == result.value  # seeded k-means: the same cells, the same statistic


def test_data_copying_statistic_without_held_out_data_is_not_available():
    for held_out in (None, np.zeros((0, 8), np.float32)):
        result = data_copying_statistic(gaussian_features(100, 0), held_out, gaussian_features(50, 1))
        assert result.value is None and result.note == "n/a: no held-out subject"
