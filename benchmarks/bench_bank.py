"""Benchmark: image-bank fill rate (generate + screen + render + write) against the bare generator, at 128² and 256²."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Run as a script (`python benchmarks/bench_bank.py`), the repository root is not on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generator.ml.grid import PAPER_GRID
from generator.ml.rendering import pixel_checksum, render_png, rendered_length, to_display_uint8
from generator.ml.screening import (
    ScreenIndex,
    SliceKey,
    screen,
    screening_grid_indices,
    threshold_without_held_out,
)
from generator.ml.slicing import normalise_intensity, sample_slices

IMAGES_PER_RUN = {128: 1024, 256: 512}
BATCH_SIZE = 64  # a fill job generates, screens and stores a batch at a time
REPEATS = 3  # bare and fill runs alternate; the best of each is kept, as the machine is shared
INDEX_CHUNK = 512


def template_volume() -> tuple[np.ndarray, np.ndarray]:
    """The MNI152 T1 template at 2 mm (inside the nilearn wheel), normalised, and its voxel_from_world."""
    from nilearn import datasets

    template = datasets.load_mni152_template(resolution=2)
    return normalise_intensity(np.asarray(template.get_fdata(), dtype=np.float32)), np.linalg.inv(template.affine)


def build_index(volume: np.ndarray, voxel_from_world: np.ndarray, size: int) -> ScreenIndex:
    """The screen's reference set for one training volume: its 6,050 screening grid slices, cut chunk by chunk."""
    kept = screening_grid_indices(PAPER_GRID)

    def batches():
        for start in range(0, len(kept), INDEX_CHUNK):
            chunk = kept[start : start + INDEX_CHUNK]
            images = sample_slices(volume, voxel_from_world, PAPER_GRID.params_array(chunk), matrix_size=size)
            yield images, [SliceKey("mni152", int(grid_index)) for grid_index in chunk]

    return ScreenIndex.from_batches(batches())


def time_bare(generator, count: int) -> float:
    """Images/s of the generator alone, batch by batch as the fill job calls it."""
    from generator.ml.training import generate

    started = time.perf_counter()
    for batch_number in range(count // BATCH_SIZE):
        generate(generator, BATCH_SIZE, seed=batch_number)
    return count / (time.perf_counter() - started)


def time_fill(generator, index: ScreenIndex, threshold: float, count: int, folder: Path) -> tuple[float, dict]:
    """Images/s of generate → screen → render → checksum → write, and seconds spent in each stage."""
    from generator.ml.training import generate

    stage_s = dict.fromkeys(("generate", "screen", "render", "write"), 0.0)
    kept = 0
    started = time.perf_counter()
    for batch_number in range(count // BATCH_SIZE):
        mark = time.perf_counter()
        images = generate(generator, BATCH_SIZE, seed=batch_number)
        stage_s["generate"] += time.perf_counter() - mark
        mark = time.perf_counter()
        results = screen(index, images, threshold)
        stage_s["screen"] += time.perf_counter() - mark
        for image, result in zip(images, results, strict=True):
            if result.excluded:
                continue
            mark = time.perf_counter()
            png = render_png(image)
            checksum = pixel_checksum(to_display_uint8(image))
            stage_s["render"] += time.perf_counter() - mark
            mark = time.perf_counter()
            (folder / f"{batch_number}-{checksum[:16]}.png").write_bytes(png)  # Django's storage does this part
            stage_s["write"] += time.perf_counter() - mark
            kept += 1
    elapsed = time.perf_counter() - started
    return count / elapsed, {**stage_s, "kept": kept}


def main() -> dict:
    from generator.ml.dcgan import build_generator, preset_config

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    volume, voxel_from_world = template_volume()
    figures: dict = {}
    for size, count in IMAGES_PER_RUN.items():
        started = time.perf_counter()
        index = build_index(volume, voxel_from_world, size)
        index_s = time.perf_counter() - started
        started = time.perf_counter()
        threshold = threshold_without_held_out(index)  # one template volume: no held-out subject
        threshold_s = time.perf_counter() - started
        print(
            f"{size}²: screen index of {len(index):,} slices ({index.memory_bytes / 2**20:.1f} MiB) built in "
            f"{index_s:.1f} s; fallback threshold {float(threshold):.4f} in {threshold_s:.1f} s"
        )
        generator = build_generator(preset_config(f"paper-{size}"))  # untrained: same arithmetic as trained
        time_bare(generator, BATCH_SIZE)  # traces the graph and warms the thread pools
        bare_rates, fill_rates, stages = [], [], {}
        with tempfile.TemporaryDirectory() as folder:
            for _ in range(REPEATS):
                bare_rates.append(time_bare(generator, count))
                rate, stage_s = time_fill(generator, index, threshold, count, Path(folder))
                fill_rates.append(rate)
                stages = stage_s if rate == max(fill_rates) else stages
            sizes = {path.stat().st_size for path in Path(folder).iterdir()}
        bare, fill = max(bare_rates), max(fill_rates)
        per_image_ms = {stage: 1000 * seconds / count for stage, seconds in stages.items() if stage != "kept"}
        print(
            f"{size}²: bare generator {bare:,.0f} images/s; bank fill {fill:,.0f} images/s "
            f"(ratio {fill / bare:.2f}×); per image ms: "
            + ", ".join(f"{stage} {ms:.2f}" for stage, ms in per_image_ms.items())
            + f"; kept {stages['kept']}/{count}; file sizes {sorted(sizes)} (expected {rendered_length(size)})"
        )
        figures[size] = {
            "bare_images_per_s": bare,
            "fill_images_per_s": fill,
            "ratio": fill / bare,
            "per_image_ms": per_image_ms,
            "index_slices": len(index),
            "index_build_s": index_s,
            "threshold_s": threshold_s,
            "fallback_threshold": float(threshold),
            "file_sizes": sorted(sizes),
        }
    return figures


if __name__ == "__main__":
    main()
