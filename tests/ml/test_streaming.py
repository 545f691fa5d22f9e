"""The tf.data slice stream: every (source, grid index) once per epoch, seeded shuffles, and the shards."""

import json

import numpy as np
import pytest

from generator.ml.grid import AugmentationGrid
from generator.ml.slicing import DEFAULT_CENTRE_MM, sample_slices
from generator.ml.streaming import SliceSource, materialise_shards, shard_location, slice_dataset, steps_per_epoch

# 3 x 1 x 3 rotations x 2 sections x 2 flips = 36 slices per volume.
TINY_GRID = AugmentationGrid(
    lr_range_deg=(-5, 5), lr_step_deg=5, ap_range_deg=(0, 0), cc_range_deg=(-3, 3), cc_step_deg=3, offsets_mm=(0, 2)
)
MATRIX = 32


def make_sources() -> list[SliceSource]:
    rng = np.random.default_rng(0)
    first = rng.uniform(-1, 1, (50, 60, 40)).astype(np.float32)
    second = np.asfortranarray(rng.uniform(-1, 1, (40, 50, 30)).astype(np.float32))
    first_matrix = np.diag([1 / 1.5, 1 / 1.5, 1 / 2.0, 1.0])
    first_matrix[:3, 3] = [25, 30 + 12, 20 - 3]
    second_matrix = np.diag([1 / 2.0, 1 / 2.0, 1 / 2.5, 1.0])
    second_matrix[:3, 3] = [20, 25, 15]
    return [
        SliceSource(first, first_matrix, None, "first"),
        SliceSource(second, second_matrix, (0.0, 0.0, 0.0), "second"),
    ]


def epoch_contents(dataset) -> tuple[list[tuple[int, int]], list[np.ndarray]]:
    keys, images = [], []
    for batch, source_indices, grid_indices in dataset:
        keys += list(zip(source_indices.numpy().tolist(), grid_indices.numpy().tolist(), strict=True))
        images.append(batch.numpy())
    return keys, images


def test_one_epoch_yields_every_source_and_index_once_as_the_slicer_draws_it():
    sources = make_sources()
    dataset = slice_dataset(
        sources, grid=TINY_GRID, matrix_size=MATRIX, fov_mm=80.0, batch_size=16, seed=7, with_keys=True
    )
    keys, images = epoch_contents(dataset)
    assert len(keys) == 72 and set(keys) == {(s, g) for s in range(2) for g in range(36)}
    assert [len(batch) for batch in images] == [16, 16, 16, 16, 8] and len(images) == steps_per_epoch(
        sources, TINY_GRID, 16
    )
    stacked = np.concatenate(images)
    assert stacked.dtype == np.float32 and stacked.shape == (72, MATRIX, MATRIX, 1)
    assert stacked.min() >= -1.0 and stacked.max() <= 1.0 and stacked.std() > 0.1
    # Each image is exactly the slice its keys name (the second source with its own centre).
    for position in (0, 17, 40, 71):
        source_index, grid_index = keys[position]
        source = sources[source_index]
        expected = sample_slices(
            source.volume,
            source.voxel_from_world,
            TINY_GRID.params_array(np.array([grid_index])),
            centre_mm=source.centre_mm or DEFAULT_CENTRE_MM,
            matrix_size=MATRIX,
            fov_mm=80.0,
        )
        np.testing.assert_array_equal(stacked[position, :, :, 0], expected[0])


def test_epochs_shuffle_differently_and_the_seed_replays_them():
    sources = make_sources()

    def dataset(seed: int, **options):
        return slice_dataset(
            sources, grid=TINY_GRID, matrix_size=16, batch_size=10, seed=seed, with_keys=True, **options
        )

    replayed = dataset(seed=3)
    first_epoch, second_epoch = epoch_contents(replayed)[0], epoch_contents(replayed)[0]
    assert sorted(first_epoch) == sorted(second_epoch) and first_epoch != second_epoch
    again = dataset(seed=3)
    assert epoch_contents(again)[0] == first_epoch and epoch_contents(again)[0] == second_epoch
    assert epoch_contents(dataset(seed=4))[0] != first_epoch
    in_order = epoch_contents(dataset(seed=3, shuffle=False))[0]
    assert in_order == [(s, g) for s in range(2) for g in range(36)]


def test_images_only_stream_and_dropped_remainder_have_static_batches():
    sources = make_sources()
    dataset = slice_dataset(sources, grid=TINY_GRID, matrix_size=16, batch_size=16, seed=0, drop_remainder=True)
    assert dataset.element_spec.shape.as_list() == [16, 16, 16, 1]
    batches = [batch.numpy() for batch in dataset]
    assert len(batches) == steps_per_epoch(sources, TINY_GRID, 16, drop_remainder=True) == 4
    assert all(batch.shape == (16, 16, 16, 1) and batch.dtype == np.float32 for batch in batches)


def test_materialised_shards_reload_to_the_same_slices(tmp_path):
    sources = make_sources()
    written = materialise_shards(
        sources, tmp_path / "shards", grid=TINY_GRID, matrix_size=MATRIX, fov_mm=80.0, shard_size=10
    )
    assert len(written) == 2 * 4 + 1 and all(path.exists() for path in written)
    assert sorted(path.name for path in (tmp_path / "shards").iterdir()) == sorted(path.name for path in written)
    index_path = written[-1]
    index = json.loads(index_path.read_text())
    assert sum(shard["count"] for shard in index["shards"]) == 72 and index["slices_per_volume"] == 36
    for source in sources:
        expected = sample_slices(
            source.volume,
            source.voxel_from_world,
            TINY_GRID.params_array(np.arange(36)),
            centre_mm=source.centre_mm or DEFAULT_CENTRE_MM,
            matrix_size=MATRIX,
            fov_mm=80.0,
        )
        for grid_index in range(36):
            path, offset = shard_location(index_path, source.name, grid_index)
            np.testing.assert_array_equal(np.load(path, mmap_mode="r")[offset], expected[grid_index])
    with pytest.raises(KeyError):
        shard_location(index_path, "first", 36)
    with pytest.raises(ValueError, match="distinct"):
        materialise_shards([sources[0], sources[0]], tmp_path / "dupes", grid=TINY_GRID, matrix_size=MATRIX)
