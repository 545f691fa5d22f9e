"""The slice augmentation grid: every (rotation, section offset, flip) a volume is sliced at, by index.

A grid index is a mixed-radix number over the five parameter axes, in this fixed order (slowest
to fastest)::

    lr (rotation about left-right x) -> ap (about anterior-posterior y) -> cc (about cranio-caudal z)
    -> section offset -> flip

so ``index = (((lr_i * n_ap + ap_i) * n_cc + cc_i) * n_offsets + offset_i) * n_flips + flip_i``.
Flip is fastest so a slice and its mirror image are neighbours, and the five sections of one
rotation are contiguous. The geometry those numbers mean is documented once, in ``slicing.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np

# Columns of a parameter array, as returned by AugmentationGrid.params_array and read by the slicer.
PARAM_COLUMNS: tuple[str, ...] = ("lr_deg", "ap_deg", "cc_deg", "offset_mm", "flip")

# Two grid values closer than this are the same value (angles built from float steps, e.g. 0.1°).
_VALUE_TOLERANCE = 1e-6


class SliceParams(NamedTuple):
    """One grid entry: rotations in degrees, section offset in mm, and whether the slice is mirrored."""

    lr_deg: float
    ap_deg: float
    cc_deg: float
    offset_mm: float
    flip: bool


def _axis_values(name: str, range_deg: tuple[float, float], step_deg: float) -> np.ndarray:
    start, stop = (float(value) for value in range_deg)
    if step_deg <= 0:
        raise ValueError(f"{name}_step_deg must be positive, got {step_deg}")
    if stop < start:
        raise ValueError(f"{name}_range_deg must run from low to high, got {range_deg}")
    steps = (stop - start) / step_deg
    if abs(steps - round(steps)) > 1e-9 * max(1.0, steps):
        raise ValueError(f"{name}_range_deg {range_deg} is not a whole number of {step_deg}° steps")
    return start + step_deg * np.arange(round(steps) + 1, dtype=np.float64)


@dataclass(frozen=True)
class AugmentationGrid:
    """Rotation ranges and steps, section offsets and flips; the product of all is the grid."""

    lr_range_deg: tuple[float, float] = (-10.0, 10.0)
    lr_step_deg: float = 1.0
    ap_range_deg: tuple[float, float] = (-10.0, 10.0)
    ap_step_deg: float = 1.0
    cc_range_deg: tuple[float, float] = (-5.0, 5.0)
    cc_step_deg: float = 1.0
    offsets_mm: tuple[float, ...] = (-4.0, -2.0, 0.0, 2.0, 4.0)
    include_flips: bool = True

    def __post_init__(self) -> None:
        if not self.offsets_mm:
            raise ValueError("offsets_mm must hold at least one section offset")
        if len(set(self.offsets_mm)) != len(self.offsets_mm):
            raise ValueError(f"offsets_mm has repeated values: {self.offsets_mm}")
        # Built now so a bad grid fails where it is declared, not at first use.
        _ = self.axis_values

    @cached_property
    def axis_values(self) -> tuple[np.ndarray, ...]:
        """The values along each parameter axis, in index order (lr, ap, cc, offset, flip)."""
        return (
            _axis_values("lr", self.lr_range_deg, self.lr_step_deg),
            _axis_values("ap", self.ap_range_deg, self.ap_step_deg),
            _axis_values("cc", self.cc_range_deg, self.cc_step_deg),
            np.asarray(self.offsets_mm, dtype=np.float64),
            np.array([0.0, 1.0] if self.include_flips else [0.0]),
        )

    @cached_property
    def axis_lengths(self) -> tuple[int, ...]:
        return tuple(len(values) for values in self.axis_values)

    @property
    def slices_per_volume(self) -> int:
        return int(np.prod(self.axis_lengths))

    def __len__(self) -> int:
        return self.slices_per_volume

    def _check_indices(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices)
        if indices.dtype.kind not in "iu":
            raise TypeError(f"grid indices must be integers, got dtype {indices.dtype}")
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            bad = indices[(indices < 0) | (indices >= len(self))].flat[0]
            raise IndexError(f"grid index {bad} is out of range 0…{len(self) - 1}")
        return indices.astype(np.int64, copy=False)

    def params_array(self, indices: np.ndarray) -> np.ndarray:
        """Parameters of many grid indices as a float64 array [n, 5] with columns PARAM_COLUMNS."""
        indices = self._check_indices(indices).reshape(-1)
        # np.unravel_index uses C order: the first axis (lr) slowest, the last (flip) fastest.
        positions = np.unravel_index(indices, self.axis_lengths)
        return np.stack(
            [values[position] for values, position in zip(self.axis_values, positions, strict=True)], axis=1
        )

    def params(self, index: int) -> SliceParams:
        """Parameters of one grid index."""
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise TypeError(f"a grid index is an integer, got {index!r}")
        lr_deg, ap_deg, cc_deg, offset_mm, flip = self.params_array(np.array([index]))[0]
        return SliceParams(float(lr_deg), float(ap_deg), float(cc_deg), float(offset_mm), bool(flip))

    def indices(self, params: np.ndarray) -> np.ndarray:
        """Grid indices of a parameter array [n, 5] (the inverse of params_array); ValueError off the grid."""
        params = np.asarray(params, dtype=np.float64).reshape(-1, len(PARAM_COLUMNS))
        positions = []
        for column, values in enumerate(self.axis_values):
            wanted = params[:, column]
            # Axes hold a few dozen values at most, so a full distance table is cheap and needs no sorting.
            position = np.abs(wanted[:, None] - values[None, :]).argmin(axis=1)
            off_grid = np.abs(values[position] - wanted) > _VALUE_TOLERANCE
            if off_grid.any():
                raise ValueError(
                    f"{PARAM_COLUMNS[column]}={wanted[off_grid][0]} is not on the grid (values {values.tolist()})"
                )
            positions.append(position)
        return np.ravel_multi_index(tuple(positions), self.axis_lengths).astype(np.int64)

    def index(self, params: SliceParams | tuple[float, float, float, float, bool]) -> int:
        """Grid index of one parameter set (the inverse of params)."""
        return int(self.indices(np.array([tuple(float(value) for value in params)]))[0])


# The paper's grid: 21 × 21 × 11 rotations × 5 sections × 2 (flip) = 48,510 slices per volume.
PAPER_GRID = AugmentationGrid()
