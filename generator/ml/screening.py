"""The memorisation screen (is a synthetic image a near-copy of a training slice?) and the data-copying statistic.

A synthetic image that reproduces a patient's training slice leaks that patient, and in a reader
study it is a real image labelled "synthetic". Every synthetic image is screened before it enters
the bank; a hit names the training slice it copies.

Feature
    Each image, clipped to [−1, 1], is area-averaged to a 16×16 thumbnail (exact area weights, so
    any matrix size works): 256 numbers. Averaging kills pixel noise and the GAN's texture, so a
    copy stays close whatever noise a generator adds, while anatomy (what would identify a
    patient) decides the distance. Optionally PCA (scikit-learn, seeded) keeps ``pca_dims`` ≤ 64.
Distance
    Euclidean between features, divided by √256: the RMS difference of the two thumbnails in the
    model's units (2 is the whole range). PCA distances use the same divisor, so they are in the
    same units, slightly shorter (the discarded components' share is dropped).
Memory and the reference subset
    The index holds float32 features (scikit-learn's nearest-neighbour search runs in float32 or
    float64; float16 would be upcast whole on every query): 1 KiB per slice at 256 dims, 256 B
    with ``pca_dims=64``, plus 12 B for its key. The paper's full grid, 96 volumes × 48,510 slices,
    would be 4.8 GB (1.2 GB with PCA). Grid slices 1° apart are near-copies of each other, so the
    index takes ``screening_grid_indices``: every section and flip, rotations every 2nd degree
    (always through 0°): 6,050 slices per volume, 6 MB each, 0.6 GB for 96 volumes (0.15 GB with
    PCA). A copy of a skipped slice lies within 1° per axis of a kept one, far closer than another
    subject's slice (the tests hold it to that).
Threshold
    ``threshold_from_held_out``: the 1 % quantile of the distances from held-out real slices
    (other subjects: DESIGN.md, "Held out means held out by subject") to the training set. An image
    closer to a training slice than 99 % of unseen real images are is excluded; a generator that
    samples the real distribution perfectly loses about 1 % of its images, which only shrinks the
    pool. It is set by data, never by a planted copy. With no held-out subject,
    ``threshold_without_held_out`` is the fallback, marked as such (``ScreenThreshold.basis``).
Data copying (Meehan, Chaudhuri & Dasgupta, AISTATS 2020)
    C_T = Σ_j π_j Z_U(L_j(P), L_j(Q)) / Σ_j π_j over the k-means cells j of the training features
    that hold enough generated samples (their τ; here ``min_generated_per_cell``), π_j the share of
    held-out samples in cell j, and Z_U the Mann–Whitney U statistic of generated-to-training
    against held-out-to-training nearest distances, Z-scored under the null. As in the authors'
    code, both distances run to the training samples of the same cell. C_T ≪ 0 is data copying:
    generated images sit closer to the training set than unseen real images do; C_T ≫ 0 is
    under-fitting; about 0 (each Z_U is about N(0, 1) under the null) neither.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from generator.ml.grid import PAPER_GRID, AugmentationGrid

FEATURE_SIDE = 16
DEFAULT_QUANTILE = 0.01
MIN_HELD_OUT_IMAGES = 20
FIT_ROWS = 50_000  # PCA and k-means are fitted on at most this many rows, drawn with the seed
MIN_GENERATED_PER_CELL = 20  # fewer make a cell's Z_U too noisy to count (Meehan et al.'s τ)
HELD_OUT_PER_CELL = 25  # the automatic cell count aims at about this many held-out images per cell
MAX_CELLS = 50
# Mirroring a brain about its midline keeps the lr rotation and negates the ap and cc rotations.
_MIRRORED_ANGLES = np.array([1.0, -1.0, -1.0])


SOURCE_CHUNK = 1024  # slices drawn at a time when indexing a source: bounded memory, few calls


class SliceKey(NamedTuple):
    """A training slice: its volume (source) and its grid index, from which it can be recomputed."""

    source_name: str
    grid_index: int

    def __str__(self) -> str:
        return f"{self.source_name} grid slice {self.grid_index}"


class ScreenThreshold(float):
    """A distance threshold (a float) that remembers how it was set: ``basis`` and a ``note`` to show."""

    basis: str  # "held_out" or "training_fallback"
    note: str

    def __new__(cls, value: float, basis: str = "", note: str = "") -> ScreenThreshold:
        threshold = super().__new__(cls, value)
        threshold.basis, threshold.note = basis, note
        return threshold


@dataclass(frozen=True)
class ScreenResult:
    distance: float
    nearest_key: SliceKey
    excluded: bool
    reason: str  # empty when kept


@dataclass(frozen=True)
class DataCopyingResult:
    value: float | None
    cells_used: int
    note: str


def image_features(images: np.ndarray, feature_side: int = FEATURE_SIDE) -> np.ndarray:
    """Area-averaged thumbnails of images [n, h, w] (or one [h, w]) in [−1, 1], flattened, float32 [n, side²]."""
    images = np.asarray(images, dtype=np.float32)
    images = images[None] if images.ndim == 2 else images
    if images.ndim != 3 or min(images.shape[1:]) < feature_side:
        raise ValueError(f"expected images [n, h, w] at least {feature_side} pixels wide, got {images.shape}")
    rows, columns = _area_weights(images.shape[1], feature_side), _area_weights(images.shape[2], feature_side)
    thumbnails = rows @ np.clip(images, -1.0, 1.0) @ columns.T
    return thumbnails.reshape(len(images), feature_side * feature_side)


def screening_grid_indices(grid: AugmentationGrid = PAPER_GRID, angle_stride: int = 2) -> np.ndarray:
    """Grid indices the screen keeps: every section and flip, each rotation every ``angle_stride`` steps through 0°."""
    positions = []
    for axis, values in enumerate(grid.axis_values):
        everything = np.arange(len(values))
        if axis < 3:  # lr, ap, cc: thin out; offsets and flips are kept whole
            centre = int(np.abs(values).argmin())
            everything = everything[(everything - centre) % angle_stride == 0]
        positions.append(everything)
    mesh = np.meshgrid(*positions, indexing="ij")
    return np.sort(np.ravel_multi_index(tuple(m.reshape(-1) for m in mesh), grid.axis_lengths)).astype(np.int64)


class ScreenIndex:
    """Training-slice features with their keys, searchable for each image's nearest training slice."""

    def __init__(
        self,
        features: np.ndarray,
        keys: Sequence[SliceKey] | Sequence[tuple[str, int]],
        *,
        pca_dims: int | None = None,
        seed: int = 0,
    ) -> None:
        """From raw thumbnail features [n, d] (``image_features``) and one key per row."""
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or len(features) == 0 or len(features) != len(keys):
            raise ValueError(
                f"need features [n, d] with n > 0 and one key each; got {features.shape}, {len(keys)} keys"
            )
        projection = _fit_pca(features, pca_dims, seed) if pca_dims is not None else None
        source_names = sorted({str(key[0]) for key in keys})
        source_number = {name: number for number, name in enumerate(source_names)}
        self._set_up(
            source_names=source_names,
            source_ids=np.array([source_number[str(key[0])] for key in keys], dtype=np.int32),
            grid_indices=np.array([int(key[1]) for key in keys], dtype=np.int64),
            raw_dims=features.shape[1],
            projection=projection,
            search_features=_project(features, projection),
        )

    def _set_up(
        self,
        *,
        source_names: list[str],
        source_ids: np.ndarray,
        grid_indices: np.ndarray,
        raw_dims: int,
        projection: tuple[np.ndarray, np.ndarray] | None,
        search_features: np.ndarray,
    ) -> None:
        from sklearn.neighbors import NearestNeighbors

        # Keys kept as a name list and two integer arrays: 12 bytes a slice rather than a tuple each.
        self.source_names, self.source_ids, self.grid_indices = source_names, source_ids, grid_indices
        self.raw_dims = raw_dims
        # Distances in thumbnail RMS units, whatever the PCA: see the module docstring.
        self.distance_scale = float(np.sqrt(raw_dims))
        self.projection = projection  # (mean [d], components [k, d]) or None
        self.reference_features = np.ascontiguousarray(search_features, dtype=np.float32)
        self._neighbours = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(self.reference_features)

    @classmethod
    def from_images(cls, images: np.ndarray, keys: Sequence[SliceKey], **options) -> ScreenIndex:
        return cls(image_features(images), keys, **options)

    @classmethod
    def from_batches(cls, batches: Iterable[tuple[np.ndarray, Sequence[SliceKey]]], **options) -> ScreenIndex:
        """Built from (images, keys) batches, so a whole grid never has to sit in memory as images."""
        feature_parts, keys = [], []
        for images, batch_keys in batches:
            feature_parts.append(image_features(images))
            keys.extend(batch_keys)
        return cls(np.concatenate(feature_parts), keys, **options)

    @classmethod
    def from_sources(cls, sources: Sequence, *, matrix_size: int, fov_mm: float, angle_stride: int = 2) -> ScreenIndex:
        """The index of slice sources' (``streaming.SliceSource``) slices at ``screening_grid_indices``."""
        from generator.ml.streaming import grid_slices  # numba: loaded where a screen is built

        indices = screening_grid_indices(angle_stride=angle_stride)

        def batches() -> Iterable[tuple[np.ndarray, list[SliceKey]]]:
            for source in sources:
                for start in range(0, len(indices), SOURCE_CHUNK):
                    chunk = indices[start : start + SOURCE_CHUNK]
                    slices = grid_slices(source, chunk, matrix_size=matrix_size, fov_mm=fov_mm)
                    yield slices, [SliceKey(source.name, int(index)) for index in chunk]

        return cls.from_batches(batches())

    def __len__(self) -> int:
        return len(self.grid_indices)

    @property
    def memory_bytes(self) -> int:
        return self.reference_features.nbytes + self.source_ids.nbytes + self.grid_indices.nbytes

    def key(self, position: int) -> SliceKey:
        return SliceKey(self.source_names[self.source_ids[position]], int(self.grid_indices[position]))

    def project(self, features: np.ndarray) -> np.ndarray:
        """Raw thumbnail features into the index's search space (PCA, if any)."""
        return _project(features, self.projection)

    def features_of(self, images: np.ndarray) -> np.ndarray:
        """Search-space features of images, e.g. for ``data_copying_statistic``."""
        return self.project(image_features(images))

    def nearest_positions(self, features: np.ndarray, count: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Distances (thumbnail RMS units) and index positions of each search-space feature's nearest slices."""
        count = min(count, len(self))
        if len(features) == 0:
            return np.zeros((0, count)), np.zeros((0, count), dtype=np.int64)
        distances, positions = self._neighbours.kneighbors(features, n_neighbors=count)
        return distances / self.distance_scale, positions

    def nearest(self, images: np.ndarray) -> tuple[np.ndarray, list[SliceKey]]:
        """Each image's distance to its nearest training slice, and that slice's key."""
        distances, positions = self.nearest_positions(self.features_of(images))
        return distances[:, 0], [self.key(position) for position in positions[:, 0]]

    def save(self, path: Path) -> None:
        """An .npz archive at exactly ``path`` (no pickles) from which ``load`` rebuilds the same index."""
        projection = self.projection or (np.zeros(0, np.float32), np.zeros((0, 0), np.float32))
        with Path(path).open("wb") as handle:  # a handle, so numpy adds no ".npz" to the name
            np.savez(
                handle,
                reference_features=self.reference_features,
                raw_dims=np.int64(self.raw_dims),
                source_names=np.array(self.source_names, dtype=str),
                source_ids=self.source_ids,
                grid_indices=self.grid_indices,
                projection_mean=projection[0],
                projection_components=projection[1],
            )

    @classmethod
    def load(cls, path: Path) -> ScreenIndex:
        with np.load(path, allow_pickle=False) as saved:
            mean, components = saved["projection_mean"], saved["projection_components"]
            index = cls.__new__(cls)
            index._set_up(
                source_names=[str(name) for name in saved["source_names"]],
                source_ids=saved["source_ids"],
                grid_indices=saved["grid_indices"],
                raw_dims=int(saved["raw_dims"]),
                projection=(mean, components) if mean.size else None,
                search_features=saved["reference_features"],  # stored in search space: not projected again
            )
        return index


def threshold_from_held_out(
    index: ScreenIndex,
    held_out_real_images: np.ndarray | Iterable[np.ndarray],
    quantile: float = DEFAULT_QUANTILE,
) -> ScreenThreshold:
    """The ``quantile`` of held-out real slices' nearest-training distances (slices of subjects NOT trained on).

    ``held_out_real_images`` is one array [n, s, s] or an iterable of such batches (at least 20 images).
    """
    batches = [held_out_real_images] if isinstance(held_out_real_images, np.ndarray) else held_out_real_images
    distances = np.concatenate([index.nearest(batch)[0] for batch in batches])
    if len(distances) < MIN_HELD_OUT_IMAGES:
        raise ValueError(f"need at least {MIN_HELD_OUT_IMAGES} held-out real images, got {len(distances)}")
    value = float(np.quantile(distances, quantile))
    note = (
        f"{quantile:.0%} quantile of {len(distances):,} held-out real slices' distances to the training set "
        f"(their median: {np.median(distances):.4f})"
    )
    return ScreenThreshold(value, "held_out", note)


def threshold_without_held_out(
    index: ScreenIndex,
    *,
    grid: AugmentationGrid = PAPER_GRID,
    quantile: float = DEFAULT_QUANTILE,
    neighbour_deg: float = 4.0,
    neighbour_mm: float = 4.0,
    sample_count: int = 500,
    seed: int = 0,
) -> ScreenThreshold:
    """Fallback when no subject is held out: the ``quantile`` of training slices' distances to their
    nearest training slice that is NOT a near-identical grid neighbour.

    A grid neighbour is a slice of the same volume whose section lies within ``neighbour_mm`` and
    whose three rotations all lie within ``neighbour_deg`` of the slice's own (lr, ap, cc) or of
    its mirror geometry (lr, −ap, −cc), either flip: a brain is nearly symmetric about the midline
    the rotations turn about, so a flipped slice nearly equals the slice at the mirror geometry
    (exactly so in a symmetric template). Slices of other volumes always count. A copy of any grid
    slice lies within 1° per axis of a slice the index keeps (``screening_grid_indices``); leaving
    out everything within 4° and 4 mm puts the threshold well above that: an image is a copy if it
    is closer to a training slice than the same volume gets some 5° away. Weaker than a held-out
    threshold (a generator trained on one subject can hardly do anything but resemble it), so it
    is marked ``basis="training_fallback"``. Needs keys holding grid indices of ``grid``.
    """
    slice_count = len(index)
    rng = np.random.default_rng(seed)
    queries = np.sort(rng.choice(slice_count, size=min(sample_count, slice_count), replace=False))
    try:
        params = grid.params_array(index.grid_indices)
    except IndexError as exc:
        raise ValueError(f"the fallback threshold needs keys holding grid indices of the given grid: {exc}") from exc
    nearest_other = np.full(len(queries), np.nan)
    pending = np.arange(len(queries))
    count = 64
    while pending.size:
        count = min(count, slice_count)
        distances, positions = index.nearest_positions(index.reference_features[queries[pending]], count)
        own = queries[pending][:, None]
        angles, own_angles = params[positions, :3], params[own, :3]
        near_identical = (
            (index.source_ids[positions] == index.source_ids[own])
            & (np.abs(params[positions, 3] - params[own, 3]) <= neighbour_mm + 1e-9)
            & (
                (np.abs(angles - own_angles).max(axis=2) <= neighbour_deg + 1e-9)
                | (np.abs(angles - own_angles * _MIRRORED_ANGLES).max(axis=2) <= neighbour_deg + 1e-9)
            )
        )
        found = ~near_identical.all(axis=1)
        first_other = np.argmax(~near_identical, axis=1)
        nearest_other[pending[found]] = distances[found, first_other[found]]
        if count == slice_count:
            break
        pending, count = pending[~found], count * 4
    measured = nearest_other[np.isfinite(nearest_other)]
    if measured.size == 0:
        raise ValueError("every training slice is a grid neighbour of every other: too few slices for a fallback")
    value = float(np.quantile(measured, quantile))
    note = (
        f"FALLBACK, no held-out subject: {quantile:.0%} quantile of {measured.size} training slices' distances to "
        f"their nearest training slice more than {neighbour_deg:g}° or {neighbour_mm:g} mm away (or from another "
        f"volume); hold out a subject for a proper threshold"
    )
    return ScreenThreshold(value, "training_fallback", note)


def screen(index: ScreenIndex, synthetic_images: np.ndarray, threshold: float) -> list[ScreenResult]:
    """Each synthetic image's nearest training slice; excluded if closer than ``threshold``."""
    distances, keys = index.nearest(synthetic_images)
    fallback = (
        " (fallback threshold: no held-out subject)" if getattr(threshold, "basis", "") == "training_fallback" else ""
    )
    results = []
    for distance, key in zip(distances, keys, strict=True):
        excluded = bool(distance < threshold)
        reason = f"near-copy of {key} (distance {distance:.4f} < {float(threshold):.4f}{fallback})" if excluded else ""
        results.append(ScreenResult(float(distance), key, excluded, reason))
    return results


def data_copying_statistic(
    train_features: np.ndarray,
    held_out_features: np.ndarray | None,
    generated_features: np.ndarray,
    *,
    cells: int | None = None,
    seed: int = 0,
    min_generated_per_cell: int = MIN_GENERATED_PER_CELL,
) -> DataCopyingResult:
    """Meehan et al.'s C_T over ``cells`` k-means cells of the training features (see the module docstring).

    ``cells=None`` aims at 25 held-out samples per cell (1…50 cells). Held-out features must come
    from subjects the generator never saw; without any the statistic is undefined.
    """
    from scipy.stats import mannwhitneyu
    from sklearn.cluster import KMeans
    from sklearn.neighbors import NearestNeighbors

    if held_out_features is None or len(held_out_features) == 0:
        return DataCopyingResult(None, 0, "n/a: no held-out subject")
    train, held_out, generated = (
        np.asarray(f, dtype=np.float32) for f in (train_features, held_out_features, generated_features)
    )
    if len(generated) == 0 or len(train) == 0:
        raise ValueError("data_copying_statistic needs training and generated features")
    cells = cells or int(np.clip(len(held_out) // HELD_OUT_PER_CELL, 1, MAX_CELLS))
    cells = min(cells, len(train))
    fit_rows = np.random.default_rng(seed).permutation(len(train))[:FIT_ROWS]
    kmeans = KMeans(n_clusters=cells, random_state=seed, n_init=3).fit(train[fit_rows])
    train_cells, held_out_cells, generated_cells = (kmeans.predict(f) for f in (train, held_out, generated))

    weights, z_scores = [], []
    for cell in range(cells):
        cell_train = train[train_cells == cell]
        cell_held_out = held_out[held_out_cells == cell]
        cell_generated = generated[generated_cells == cell]
        if len(cell_train) == 0 or len(cell_held_out) == 0 or len(cell_generated) < min_generated_per_cell:
            continue
        neighbours = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(cell_train)
        generated_distances = neighbours.kneighbors(cell_generated)[0][:, 0]
        held_out_distances = neighbours.kneighbors(cell_held_out)[0][:, 0]
        # U of the generated sample: pairs where a generated image lies farther from training than a held-out one.
        u_statistic = mannwhitneyu(generated_distances, held_out_distances).statistic
        m, n = len(generated_distances), len(held_out_distances)
        z_scores.append((u_statistic - m * n / 2) / np.sqrt(m * n * (m + n + 1) / 12))
        weights.append(n / len(held_out))
    if not weights:
        return DataCopyingResult(
            None,
            0,
            f"n/a: no cell holds {min_generated_per_cell} generated images (of {len(generated)}); generate more",
        )
    value = float(np.dot(weights, z_scores) / np.sum(weights))
    note = (
        f"C_T over {len(weights)} of {cells} cells, {len(held_out):,} held-out and {len(generated):,} generated "
        "images; below 0 generated images lie closer to the training set than unseen real ones (data copying), "
        "above 0 farther (under-fitting)"
    )
    return DataCopyingResult(value, len(weights), note)


def _area_weights(size: int, side: int) -> np.ndarray:
    """[side, size] matrix averaging each of ``side`` equal spans of ``size`` pixels, partial pixels by overlap."""
    edges = np.arange(side + 1) * (size / side)
    pixel_starts = np.arange(size)
    overlap = np.clip(
        np.minimum(edges[1:, None], pixel_starts[None, :] + 1) - np.maximum(edges[:-1, None], pixel_starts[None, :]),
        0.0,
        None,
    )
    return (overlap / (size / side)).astype(np.float32)


def _project(features: np.ndarray, projection: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    if projection is None:
        return features
    mean, components = projection
    return (features - mean) @ components.T


def _fit_pca(features: np.ndarray, pca_dims: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.decomposition import PCA

    if not 1 <= pca_dims <= min(features.shape):
        raise ValueError(f"pca_dims must be 1…{min(features.shape)}, got {pca_dims}")
    rows = np.random.default_rng(seed).permutation(len(features))[:FIT_ROWS]
    pca = PCA(n_components=pca_dims, random_state=seed).fit(features[rows])
    return pca.mean_.astype(np.float32), pca.components_.astype(np.float32)
