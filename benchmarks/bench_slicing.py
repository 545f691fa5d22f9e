"""Benchmark: grid slices per second from the numba kernel, a naive rotate-the-volume baseline, and tf.data."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

# Run as a script (`python benchmarks/bench_slicing.py`), the repository root is not on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generator.ml.grid import PAPER_GRID
from generator.ml.slicing import (
    DEFAULT_CENTRE_MM,
    DEFAULT_FOV_MM,
    normalise_intensity,
    prepare_volume,
    rotation_matrices,
    sample_slices,
)
from generator.ml.streaming import SliceSource, slice_dataset

# A clinical-looking acquisition grid: 0.94 x 0.94 x 1.5 mm voxels, 240 x 240 x 180 mm, a few degrees
# off the template axes (as a real head is), so the kernel meets an oblique voxel_from_world.
SCAN_SHAPE = (256, 256, 120)
SCAN_SPACING_MM = (0.94, 0.94, 1.5)
SCAN_TILT_DEG = (3.0, -2.0, 4.0)
NAIVE_ANGLE_TRIPLES = 3
STREAM_BATCH = 64
STREAM_BATCHES = {64: 600, 128: 300}


def scan_like_volume() -> tuple[np.ndarray, np.ndarray]:
    """The MNI152 T1 template (inside the nilearn wheel) resampled onto SCAN_SHAPE voxels; normalised."""
    from nilearn import datasets

    template = datasets.load_mni152_template(resolution=1)
    world_from_scan = np.eye(4)
    world_from_scan[:3, :3] = rotation_matrices(*SCAN_TILT_DEG)[0] * np.array(SCAN_SPACING_MM)
    scan_centre_voxel = (np.array(SCAN_SHAPE) - 1) / 2
    world_from_scan[:3, 3] = np.array(DEFAULT_CENTRE_MM) - world_from_scan[:3, :3] @ scan_centre_voxel
    template_from_scan = np.linalg.inv(template.affine) @ world_from_scan
    scan = ndimage.affine_transform(
        np.asarray(template.get_fdata(), dtype=np.float32), template_from_scan, output_shape=SCAN_SHAPE, order=1
    )
    return normalise_intensity(scan), np.linalg.inv(world_from_scan)


def time_full_grid(volume: np.ndarray, voxel_from_world: np.ndarray, matrix_size: int) -> float:
    """Seconds to draw all 48,510 grid slices of one volume, in index order, chunk by chunk."""
    chunk = max(64, 2**24 // matrix_size**2)
    buffer = np.empty((chunk, matrix_size, matrix_size), dtype=np.float32)
    buffer.fill(0.0)  # touch the pages now, not inside the timing
    started = time.perf_counter()
    for start in range(0, len(PAPER_GRID), chunk):
        params = PAPER_GRID.params_array(np.arange(start, min(start + chunk, len(PAPER_GRID))))
        out = buffer[: len(params)]
        sample_slices(volume, voxel_from_world, params, matrix_size=matrix_size, out=out)
    return time.perf_counter() - started


def time_naive(volume: np.ndarray, voxel_from_world: np.ndarray, matrix_size: int) -> tuple[float, int]:
    """Seconds and slices for the naive way: rotate the whole volume three times per angle triple.

    Timing baseline only: scipy rotates about the array centre, not the basal-ganglia centre.
    """
    rng = np.random.default_rng(0)
    spacing_mm = 1 / np.linalg.norm(voxel_from_world[:3, :3], axis=1)
    centre_voxel = voxel_from_world[:3, :3] @ np.array(DEFAULT_CENTRE_MM) + voxel_from_world[:3, 3]
    pixel_mm = DEFAULT_FOV_MM / matrix_size
    in_plane_mm = ((matrix_size - 1) / 2 - np.arange(matrix_size)) * pixel_mm
    rows_mm, columns_mm = np.meshgrid(in_plane_mm, in_plane_mm, indexing="ij")
    section_rows = centre_voxel[0] + columns_mm / spacing_mm[0]
    section_columns = centre_voxel[1] + rows_mm / spacing_mm[1]
    slice_count = 0
    started = time.perf_counter()
    for _ in range(NAIVE_ANGLE_TRIPLES):
        lr, ap, cc = rng.integers(-10, 11), rng.integers(-10, 11), rng.integers(-5, 6)
        rotated = ndimage.rotate(volume, lr, axes=(1, 2), reshape=False, order=1, cval=-1.0)
        rotated = ndimage.rotate(rotated, ap, axes=(0, 2), reshape=False, order=1, cval=-1.0)
        rotated = ndimage.rotate(rotated, cc, axes=(0, 1), reshape=False, order=1, cval=-1.0)
        for offset_mm in PAPER_GRID.offsets_mm:
            level = centre_voxel[2] + offset_mm / spacing_mm[2]
            below = int(np.floor(level))
            section = rotated[:, :, below] + (level - below) * (rotated[:, :, below + 1] - rotated[:, :, below])
            image = ndimage.map_coordinates(section, [section_rows, section_columns], order=1, cval=-1.0)
            images = (image, image[:, ::-1].copy())
            slice_count += len(images)
    return time.perf_counter() - started, slice_count


def time_stream(volume: np.ndarray, voxel_from_world: np.ndarray, matrix_size: int, batches: int) -> float:
    """Slices per second a consumer pulls from slice_dataset (after its first batch)."""
    source = SliceSource(volume, voxel_from_world, None, "template")
    dataset = slice_dataset([source], matrix_size=matrix_size, batch_size=STREAM_BATCH, seed=0)
    iterator = iter(dataset)
    next(iterator)  # graph building and the first chunk are start-up, not throughput
    started = time.perf_counter()
    for _ in range(batches):
        batch = next(iterator)
    elapsed = time.perf_counter() - started
    assert batch.shape == (STREAM_BATCH, matrix_size, matrix_size, 1)
    return batches * STREAM_BATCH / elapsed


def main() -> dict[str, float]:
    figures: dict[str, float] = {}

    def report(name: str, value: float, unit: str, note: str = "") -> None:
        figures[name] = value
        print(f"{name:<58} {value:>12,.2f} {unit}{'  ' + note if note else ''}", flush=True)

    started = time.perf_counter()
    report("load_average_1min_at_start", os.getloadavg()[0], "", "(other processes competing for the cores)")
    volume, voxel_from_world = scan_like_volume()
    print(f"volume: MNI152 T1 resampled to {SCAN_SHAPE} at {SCAN_SPACING_MM} mm, tilted {SCAN_TILT_DEG}°")
    report("volume_build_s", time.perf_counter() - started, "s")
    prepared_at = time.perf_counter()
    volume, voxel_from_world = prepare_volume(volume, voxel_from_world)
    report("prepare_volume_s", time.perf_counter() - prepared_at, "s", "(once per volume: z-slowest layout)")
    # Warm up: load or compile the numba kernels before anything is timed.
    sample_slices(volume, voxel_from_world, PAPER_GRID.params_array(np.arange(4)), matrix_size=64)

    slices = len(PAPER_GRID)
    for matrix_size in (128, 256):
        cpu_started = time.process_time()
        seconds = time_full_grid(volume, voxel_from_world, matrix_size)
        cpu_seconds = time.process_time() - cpu_started
        report(f"kernel_full_grid_{matrix_size}_s_per_volume", seconds, "s", f"({slices:,} slices, measured in full)")
        report(f"kernel_full_grid_{matrix_size}_slices_per_s", slices / seconds, "slices/s")
        # Flipped slices are mirrored copies, so half the slices are actually sampled.
        report(f"kernel_full_grid_{matrix_size}_planes_per_s", slices / 2 / seconds, "sampled planes/s")
        # On a shared machine wall time hides how much CPU we actually got; 2.0 means both cores.
        report(f"kernel_full_grid_{matrix_size}_cores_used", cpu_seconds / seconds, "cores", f"of {os.cpu_count()}")
        estimate_note = "(estimate: CPU seconds spread over every core; the kernel scales ~linearly)"
        estimate_name = f"kernel_full_grid_{matrix_size}_s_per_volume_all_cores_estimate"
        report(estimate_name, cpu_seconds / os.cpu_count(), "s", estimate_note)

    naive_seconds, naive_slices = time_naive(volume, voxel_from_world, 128)
    naive_note = (
        f"({NAIVE_ANGLE_TRIPLES} angle triples x 3 ndimage.rotate, {naive_slices} slices, {naive_seconds:.1f} s)"
    )
    report("naive_rotate_128_slices_per_s", naive_slices / naive_seconds, "slices/s", naive_note)
    report("naive_rotate_128_s_per_volume", slices * naive_seconds / naive_slices, "s", "(extrapolated)")
    ratio = figures["kernel_full_grid_128_slices_per_s"] / figures["naive_rotate_128_slices_per_s"]
    report("speedup_kernel_over_naive_128", ratio, "x", "(target >= 1,000x)")
    report("kernel_128_s_per_volume_vs_target", figures["kernel_full_grid_128_s_per_volume"], "s", "(target <= 3 s)")
    estimate = figures["kernel_full_grid_128_s_per_volume_all_cores_estimate"]
    report("speedup_all_cores_estimate_128", slices / estimate / figures["naive_rotate_128_slices_per_s"], "x")

    for matrix_size, batches in STREAM_BATCHES.items():
        rate = time_stream(volume, voxel_from_world, matrix_size, batches)
        report(
            f"stream_{matrix_size}_slices_per_s",
            rate,
            "slices/s",
            f"(tf.data, {batches} shuffled batches of {STREAM_BATCH})",
        )
    report("load_average_1min_at_end", os.getloadavg()[0], "")
    report("benchmark_total_s", time.perf_counter() - started, "s")
    return figures


if __name__ == "__main__":
    main()
