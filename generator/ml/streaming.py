"""Grid slices for training, drawn on the fly into a tf.data pipeline (or written to shards to inspect)."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from generator.ml.grid import PAPER_GRID, AugmentationGrid
from generator.ml.slicing import DEFAULT_CENTRE_MM, DEFAULT_FOV_MM, prepare_volume, sample_slices

if TYPE_CHECKING:
    import tensorflow as tf

# Slices are drawn a chunk at a time, about this many pixels (64 MB of float32): large enough that
# per-call overhead vanishes, small enough that memory stays flat whatever the grid size.
CHUNK_PIXELS = 2**24

SHARD_INDEX_NAME = "index.json"


@dataclass(frozen=True, eq=False)
class SliceSource:
    """One normalised volume to slice: its voxels, its voxel_from_world matrix, its own centre if any."""

    volume: np.ndarray
    voxel_from_world: np.ndarray
    centre_mm: tuple[float, float, float] | None = None
    name: str = ""


def steps_per_epoch(
    sources: Sequence[SliceSource],
    grid: AugmentationGrid = PAPER_GRID,
    batch_size: int = 64,
    *,
    drop_remainder: bool = False,
) -> int:
    """Batches in one epoch, i.e. one pass over every (source, grid index) pair."""
    pair_count = len(sources) * len(grid)
    return pair_count // batch_size if drop_remainder else -(-pair_count // batch_size)


def epoch_order(pair_count: int, *, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The order of pair ids (source_index * len(grid) + grid_index) in one epoch: same seed, same order."""
    if not shuffle:
        return np.arange(pair_count, dtype=np.int64)
    return np.random.default_rng([seed, epoch]).permutation(pair_count).astype(np.int64)


def grid_slices(
    source: SliceSource,
    grid_indices: np.ndarray,
    *,
    matrix_size: int,
    fov_mm: float = DEFAULT_FOV_MM,
    grid: AugmentationGrid = PAPER_GRID,
) -> np.ndarray:
    """One source's slices at some grid indices, float32 [n, s, s]: a slice is (source, grid index)."""
    params = grid.params_array(np.asarray(grid_indices))
    return sample_slices(
        source.volume,
        source.voxel_from_world,
        params,
        centre_mm=source.centre_mm,
        matrix_size=matrix_size,
        fov_mm=fov_mm,
    )


class _SliceDrawer:
    """Sources laid out once for the kernel, and a function from pair ids to images."""

    def __init__(
        self,
        sources: Sequence[SliceSource],
        *,
        grid: AugmentationGrid,
        matrix_size: int,
        fov_mm: float,
        centre_mm: tuple[float, float, float],
    ) -> None:
        if not sources:
            raise ValueError("at least one SliceSource is needed")
        self.grid, self.matrix_size, self.fov_mm = grid, matrix_size, fov_mm
        # Layout work (a transpose copy at worst) happens here once, not on every chunk.
        self.prepared = [prepare_volume(source.volume, source.voxel_from_world) for source in sources]
        self.centres = [source.centre_mm if source.centre_mm is not None else centre_mm for source in sources]

    def draw(self, pair_ids: np.ndarray) -> np.ndarray:
        grid_size = len(self.grid)
        source_indices, grid_indices = np.divmod(pair_ids, grid_size)
        images = np.empty((len(pair_ids), self.matrix_size, self.matrix_size), dtype=np.float32)
        for source_index in np.unique(source_indices):
            positions = np.flatnonzero(source_indices == source_index)
            volume, voxel_from_world = self.prepared[source_index]
            images[positions] = sample_slices(
                volume,
                voxel_from_world,
                self.grid.params_array(grid_indices[positions]),
                centre_mm=self.centres[source_index],
                matrix_size=self.matrix_size,
                fov_mm=self.fov_mm,
            )
        return images


def slice_dataset(
    sources: Sequence[SliceSource],
    *,
    grid: AugmentationGrid = PAPER_GRID,
    matrix_size: int,
    fov_mm: float = DEFAULT_FOV_MM,
    batch_size: int = 64,
    seed: int = 0,
    centre_mm: tuple[float, float, float] = DEFAULT_CENTRE_MM,
    shuffle: bool = True,
    drop_remainder: bool = False,
    with_keys: bool = False,
) -> tf.data.Dataset:
    """Batches float32 [b, s, s, 1] in [-1, 1], every (source, grid index) once per epoch, nothing on disk.

    Each iteration over the dataset (each Keras epoch, each ``repeat``) is a new epoch with its own
    shuffled order, drawn from (seed, epoch number): a new dataset with the same seed replays the
    same sequence of epochs. With ``with_keys`` each element is ``(images, source_indices,
    grid_indices)``, so a slice can be traced back and recomputed.
    """
    import tensorflow as tf

    drawer = _SliceDrawer(sources, grid=grid, matrix_size=matrix_size, fov_mm=fov_mm, centre_mm=centre_mm)
    batch_count = steps_per_epoch(sources, grid, batch_size, drop_remainder=drop_remainder)
    pair_count = len(sources) * len(grid)
    chunk_slices = max(1, CHUNK_PIXELS // (matrix_size * matrix_size) // batch_size) * batch_size
    epochs = itertools.count()

    def batches() -> Iterator[np.ndarray | tuple[np.ndarray, ...]]:
        order = epoch_order(pair_count, seed=seed, epoch=next(epochs), shuffle=shuffle)
        order = order[: min(pair_count, batch_count * batch_size)]
        for chunk_start in range(0, len(order), chunk_slices):
            pair_ids = order[chunk_start : chunk_start + chunk_slices]
            # The kernel releases the GIL, so the training step runs while the next chunk is drawn.
            images = drawer.draw(pair_ids)[..., None]
            source_indices, grid_indices = np.divmod(pair_ids, len(grid))
            for batch_start in range(0, len(pair_ids), batch_size):
                batch = slice(batch_start, batch_start + batch_size)
                if with_keys:
                    yield images[batch], source_indices[batch].astype(np.int32), grid_indices[batch]
                else:
                    yield images[batch]

    # Only full batches are yielded when the remainder is dropped, so the batch size can be static.
    batch_dimension = batch_size if drop_remainder else None
    image_spec = tf.TensorSpec(shape=(batch_dimension, matrix_size, matrix_size, 1), dtype=tf.float32)
    signature: tf.TensorSpec | tuple[tf.TensorSpec, ...] = image_spec
    if with_keys:
        key_spec = (tf.TensorSpec((batch_dimension,), tf.int32), tf.TensorSpec((batch_dimension,), tf.int64))
        signature = (image_spec, *key_spec)
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    return dataset.prefetch(tf.data.AUTOTUNE)


def materialise_shards(
    sources: Sequence[SliceSource],
    out_dir: str | os.PathLike[str],
    *,
    grid: AugmentationGrid = PAPER_GRID,
    matrix_size: int,
    fov_mm: float = DEFAULT_FOV_MM,
    centre_mm: tuple[float, float, float] = DEFAULT_CENTRE_MM,
    shard_size: int = 4096,
) -> list[Path]:
    """Write every grid slice of every source as .npy shards plus index.json; return the written paths.

    Shards hold consecutive grid indices of one source, float32 [n, s, s], and never mix sources,
    so the index stays small: per shard, its source name, first grid index and count
    (``shard_location`` turns (source name, grid index) into shard path and offset).
    """
    names = [source.name for source in sources]
    if len(set(names)) != len(names) or not all(names):
        raise ValueError(f"sources need distinct, non-empty names to be indexed, got {names}")
    if shard_size < 1:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    drawer = _SliceDrawer(sources, grid=grid, matrix_size=matrix_size, fov_mm=fov_mm, centre_mm=centre_mm)
    written: list[Path] = []
    shards: list[dict[str, object]] = []
    for source_index, source in enumerate(sources):
        for first_grid_index in range(0, len(grid), shard_size):
            count = min(shard_size, len(grid) - first_grid_index)
            pair_ids = source_index * len(grid) + first_grid_index + np.arange(count, dtype=np.int64)
            path = out_dir / f"shard-{len(shards):05d}.npy"
            _write_atomically(path, lambda handle, ids=pair_ids: np.save(handle, drawer.draw(ids)))
            shards.append(
                {"file": path.name, "source": source.name, "first_grid_index": first_grid_index, "count": count}
            )
            written.append(path)
    index = {
        "matrix_size": matrix_size,
        "fov_mm": fov_mm,
        "centre_mm": list(centre_mm),
        "source_centres_mm": {source.name: source.centre_mm for source in sources if source.centre_mm is not None},
        "grid": asdict(grid),
        "slices_per_volume": len(grid),
        "shards": shards,
    }
    index_path = out_dir / SHARD_INDEX_NAME
    _write_atomically(index_path, lambda handle: handle.write(json.dumps(index, indent=1).encode()))
    written.append(index_path)
    return written


def shard_location(index_path: str | os.PathLike[str], source_name: str, grid_index: int) -> tuple[Path, int]:
    """Shard file and offset of one (source name, grid index) in a materialise_shards folder."""
    index_path = Path(index_path)
    index = json.loads(index_path.read_text())
    for shard in index["shards"]:
        if shard["source"] == source_name and 0 <= grid_index - shard["first_grid_index"] < shard["count"]:
            return index_path.parent / shard["file"], grid_index - shard["first_grid_index"]
    raise KeyError(f"no shard holds source {source_name!r}, grid index {grid_index}")


def _write_atomically(path: Path, write) -> None:
    # A half-written shard must never look like a finished one to a reader of the folder.
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as handle:
        write(handle)
    os.replace(partial, path)
