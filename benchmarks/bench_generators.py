"""The paper's preset against the one beyond it, on the same data and the same wall-clock budget.

Data: the demo's pseudo-subjects (``generator.ml.pseudo_subjects``: the MNI152 template with a
random head size, ventricles, deformation, bias field, noise and pose), made and aligned here as
the demo does, at 64². Each preset trains ``BENCH_GENERATOR_MINUTES`` (default 3) minutes from
scratch for each of ``SEEDS``, then measures itself as every job does (``generator.ml.metrics``:
SWD to the real slices, MS-SSIM diversity of synthetic pairs beside real pairs, 512 images of each),
with the collapse verdict; then 512 of its images go to
- the machine observer (``generator.ml.observer``, as a study's observer job runs it: 8 epochs,
  batch 32, split by group, one scored image per held-out group): real slices of the 12 training
  subjects and of ``HELD_OUT_SUBJECTS`` more people the generators never saw, 20 slices each, one
  group per person; every synthetic image its own group (independent draws);
- the memorisation screen (``generator.ml.screening``, as a bank fill runs it): an index of the
  training subjects' slices (every 4th degree, every section and flip), the threshold from the
  held-out subjects' slices; a near-copy is a synthetic image closer to a training slice than 99 %
  of unseen people's slices are.
Reported per seed and as medians over seeds; the targets compare the new preset with the paper's
(quick-64: the paper's net and losses, Radford's discriminator): SWD ≤ 0.7×, diversity within
0.05 of real's, observer accuracy below the paper preset's.

``BENCH_GENERATOR_SIZE=128`` runs the same at 128²: ``paper-128`` against ``modern-64``'s recipe
at that size (every preset's size and budget are replaced by the run's).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generator.ml.dcgan import preset_config
from generator.ml.metrics import diversity_verdict
from generator.ml.streaming import SliceSource, grid_slices, slice_dataset, steps_per_epoch

SIZE = int(os.environ.get("BENCH_GENERATOR_SIZE", "64"))
DEFAULT_PRESETS = {64: "quick-64,modern-64", 128: "paper-128,modern-64"}
PRESETS = tuple(os.environ.get("BENCH_GENERATOR_PRESETS", DEFAULT_PRESETS.get(SIZE, "")).split(","))
SEEDS = tuple(range(int(os.environ.get("BENCH_GENERATOR_SEEDS", "3"))))
SUBJECTS = 12  # the demo trains on 12 pseudo-subjects
HELD_OUT_SUBJECTS = 20  # people no generator saw: the observer's extra real groups, the screen's threshold
SLICES_PER_SUBJECT = 20  # real images per person for the observer and the threshold
SYNTHETIC_IMAGES = 512
OBSERVER_EPOCHS, OBSERVER_BATCH = 8, 32  # a study's observer job's defaults
SCREEN_ANGLE_STRIDE = 4
MINUTES = float(os.environ.get("BENCH_GENERATOR_MINUTES", "3"))


def pseudo_subject_sources(count: int) -> list[SliceSource]:
    """The demo's pseudo-subjects (seeds 0, 1, …) as slice sources: made, aligned and normalised as the demo's are."""
    import nibabel as nib
    import nilearn

    from generator.ml.alignment import align_to_template, brain_mask_in_native
    from generator.ml.pseudo_subjects import PseudoSubjectRecipe, make_pseudo_subject
    from generator.ml.slicing import DEFAULT_CENTRE_MM, normalise_intensity
    from generator.ml.volumes import LoadedVolume

    path = Path(nilearn.__file__).parent / "datasets" / "data" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    template = nib.load(path)
    data, affine = template.get_fdata(dtype=np.float32), template.affine
    sources = []
    for seed in range(count):
        subject, subject_affine = make_pseudo_subject(data, affine, PseudoSubjectRecipe.draw(seed))
        loaded = LoadedVolume(data=subject, affine=subject_affine, voxel_size_mm=(2.0, 2.0, 2.0), source_format="nifti")
        alignment = align_to_template(loaded)
        volume = normalise_intensity(loaded.data, mask=brain_mask_in_native(loaded, alignment))
        sources.append(SliceSource(volume, alignment.voxel_from_template_world, DEFAULT_CENTRE_MM, f"pseudo-{seed}"))
    return sources


class RealReference:
    """What every run is judged against: real slices per person, the screen's index and threshold."""

    def __init__(self, training: list[SliceSource], held_out: list[SliceSource], *, size: int) -> None:
        from generator.ml.grid import PAPER_GRID
        from generator.ml.screening import ScreenIndex, threshold_from_held_out
        from generator.ml.slicing import DEFAULT_FOV_MM

        rng = np.random.default_rng(7)
        self.images, self.groups = [], []
        for source in training + held_out:
            indices = rng.choice(len(PAPER_GRID), size=SLICES_PER_SUBJECT, replace=False)
            self.images.append(grid_slices(source, indices, matrix_size=size))
            self.groups += [f"subject:{source.name}"] * SLICES_PER_SUBJECT
        self.images = np.concatenate(self.images)
        self.index = ScreenIndex.from_sources(
            training, matrix_size=size, fov_mm=DEFAULT_FOV_MM, angle_stride=SCREEN_ANGLE_STRIDE
        )
        held_out_images = self.images[len(training) * SLICES_PER_SUBJECT :]
        self.threshold = threshold_from_held_out(self.index, held_out_images)


def train_and_measure(preset: str, seed: int, sources: list[SliceSource], workdir: Path) -> dict:
    from generator.ml.training import train

    config = preset_config(preset, size=SIZE, minutes=MINUTES, seed=seed, metrics_every="end")
    dataset = slice_dataset(sources, matrix_size=SIZE, batch_size=config.batch_size, seed=seed, drop_remainder=True)
    run_folder = Path(tempfile.mkdtemp(dir=workdir))
    result = train(
        config,
        dataset,
        steps_per_epoch=steps_per_epoch(sources, batch_size=config.batch_size, drop_remainder=True),
        checkpoint_dir=run_folder,
    )
    point = result.metrics[-1]
    verdict = diversity_verdict(point)
    print(
        f"{preset:10s} seed {seed}: {result.steps_done:5d} steps in {result.trained_s:5.0f} s; SWD×1e3 "
        f"{point['swd_mean']:6.1f}; MS-SSIM synthetic {point['ms_ssim_synthetic']:.3f} / real "
        f"{point['ms_ssim_real']:.3f} ({verdict['excess']:+.3f}: {verdict['verdict']})",
        flush=True,
    )
    return {
        **verdict,
        "steps": result.steps_done,
        "swd": point["swd_mean"],
        "synthetic": sampled_images(run_folder, seed=seed),
    }


def judge(run: dict, reference: RealReference, *, preset: str, seed: int) -> None:
    """The observer's accuracy and the screen's near-copies for a trained run's images, into ``run``."""
    observer = observe(reference, run.pop("synthetic"), seed=seed)
    run["observer_accuracy"], run["observer_interval"] = observer.accuracy, observer.accuracy_interval
    run["observer_scored"] = observer.n_scored
    print(
        f"{preset:10s} seed {seed}: observer accuracy {observer.accuracy:.2f} "
        f"[{observer.accuracy_interval[0]:.2f}, {observer.accuracy_interval[1]:.2f}] on {observer.n_scored} "
        f"held-out images; near-copies {run['near_copies']} of {SYNTHETIC_IMAGES}",
        flush=True,
    )


def sampled_images(run_folder: Path, *, seed: int) -> np.ndarray:
    """The images a bank fill would take: the exported (averaged, where kept) generator's, in float32."""
    from generator.ml.training import export_generator, generate, load_generator

    path = export_generator(run_folder, run_folder / "generator.keras")
    return generate(load_generator(path), SYNTHETIC_IMAGES, seed=10_000 + seed)


def observe(reference: RealReference, synthetic: np.ndarray, *, seed: int):
    from generator.ml.observer import REAL, SYNTHETIC, run_observer

    images = np.concatenate([reference.images, synthetic])
    labels = [REAL] * len(reference.images) + [SYNTHETIC] * len(synthetic)
    groups = reference.groups + [f"synthetic:{index}" for index in range(len(synthetic))]
    return run_observer(images, labels, groups, seed=seed, epochs=OBSERVER_EPOCHS, batch_size=OBSERVER_BATCH)


def screened_out(reference: RealReference, synthetic: np.ndarray) -> int:
    from generator.ml.screening import screen

    return sum(result.excluded for result in screen(reference.index, synthetic, reference.threshold))


def main() -> dict:
    from generator.ml.hardware import cpu_summary

    print(f"CPU: {cpu_summary()}; {len(PRESETS)} presets x {len(SEEDS)} seeds x {MINUTES:g} min each")
    started = time.perf_counter()
    people = pseudo_subject_sources(SUBJECTS + HELD_OUT_SUBJECTS)
    sources, held_out = people[:SUBJECTS], people[SUBJECTS:]
    print(f"{len(people)} pseudo-subjects made and aligned in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    reference = RealReference(sources, held_out, size=SIZE)
    print(
        f"screen index of {len(reference.index):,} training slices and {len(reference.images)} real images for the "
        f"observer in {time.perf_counter() - started:.0f} s; {reference.threshold.note}"
    )
    runs: dict[str, list[dict]] = {preset: [] for preset in PRESETS}
    with tempfile.TemporaryDirectory() as workdir:
        for seed in SEEDS:  # seeds outermost: a machine that slows down slows both presets alike
            for preset in PRESETS:
                run = train_and_measure(preset, seed, sources, Path(workdir))
                run["near_copies"] = screened_out(reference, run["synthetic"])
                runs[preset].append(run)
    # The observer turns on TensorFlow's op determinism for the whole process, for good: it runs
    # after every training run, so all of them train alike.
    for preset, results in runs.items():
        for seed, run in zip(SEEDS, results, strict=True):
            judge(run, reference, preset=preset, seed=seed)
    figures = {}
    for preset, results in runs.items():
        figures[f"{preset}_swd_median"] = statistics.median(run["swd"] for run in results)
        figures[f"{preset}_excess_median"] = statistics.median(run["excess"] for run in results)
        figures[f"{preset}_collapsed_runs"] = sum(run["verdict"] == "collapsed" for run in results)
        figures[f"{preset}_steps_median"] = statistics.median(run["steps"] for run in results)
        figures[f"{preset}_observer_median"] = statistics.median(run["observer_accuracy"] for run in results)
        figures[f"{preset}_near_copies"] = sum(run["near_copies"] for run in results)
        print(
            f"{preset:10s} median over {len(SEEDS)} seeds: SWD×1e3 {figures[f'{preset}_swd_median']:.1f}, "
            f"MS-SSIM synthetic − real {figures[f'{preset}_excess_median']:+.3f}, "
            f"{figures[f'{preset}_collapsed_runs']} of {len(SEEDS)} collapsed, "
            f"{figures[f'{preset}_steps_median']:.0f} steps, observer accuracy "
            f"{figures[f'{preset}_observer_median']:.2f}, near-copies {figures[f'{preset}_near_copies']} in all"
        )
    if len(PRESETS) < 2:
        return figures
    new, paper = PRESETS[1], PRESETS[0]
    ratio = figures[f"{new}_swd_median"] / figures[f"{paper}_swd_median"]
    figures["swd_new_over_paper"] = ratio
    print(f"{new} SWD / {paper} SWD: {ratio:.2f}x (target ≤ 0.7x)")
    excess = figures[f"{new}_excess_median"]
    print(f"{new} diversity: {excess:+.3f} from real's (target within ±0.05)")
    observer_new, observer_paper = figures[f"{new}_observer_median"], figures[f"{paper}_observer_median"]
    print(f"observer accuracy {new} {observer_new:.2f} against {paper} {observer_paper:.2f} (target: below)")
    return figures


if __name__ == "__main__":
    main()
