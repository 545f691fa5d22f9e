"""The paper's preset against the one beyond it, on the same data and the same wall-clock budget.

Data: the demo's pseudo-subjects (``generator.ml.pseudo_subjects``: the MNI152 template with a
random head size, ventricles, deformation, bias field, noise and pose), made and aligned here as
the demo does, at 64². Each preset trains ``BENCH_GENERATOR_MINUTES`` (default 3) minutes from
scratch for each of ``SEEDS``, then measures itself as every job does (``generator.ml.metrics``:
SWD to the real slices, MS-SSIM diversity of synthetic pairs beside real pairs, 512 images of each),
with the collapse verdict. Reported per seed and as medians over seeds; the targets compare the new
preset with the paper's (quick-64: the paper's net and losses, Radford's discriminator):
SWD ≤ 0.7×, diversity within 0.05 of real's.

Not yet here (issue #22): the machine observer's accuracy on each generator's images, split by
subject, and the near-copies the memorisation screen finds; 128².
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
from generator.ml.streaming import SliceSource, slice_dataset, steps_per_epoch

PRESETS = tuple(os.environ.get("BENCH_GENERATOR_PRESETS", "quick-64,modern-64").split(","))
SEEDS = tuple(range(int(os.environ.get("BENCH_GENERATOR_SEEDS", "3"))))
SUBJECTS = 12  # the demo trains on 12 pseudo-subjects
MINUTES = float(os.environ.get("BENCH_GENERATOR_MINUTES", "3"))


def pseudo_subject_sources(count: int) -> list[SliceSource]:
    """The demo's pseudo-subjects as slice sources: made, aligned and normalised as the demo's are."""
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


def train_and_measure(preset: str, seed: int, sources: list[SliceSource], workdir: Path) -> dict:
    from generator.ml.training import train

    config = preset_config(preset, minutes=MINUTES, seed=seed, metrics_every="end")
    dataset = slice_dataset(sources, matrix_size=64, batch_size=config.batch_size, seed=seed, drop_remainder=True)
    result = train(
        config,
        dataset,
        steps_per_epoch=steps_per_epoch(sources, batch_size=config.batch_size, drop_remainder=True),
        checkpoint_dir=Path(tempfile.mkdtemp(dir=workdir)),
    )
    point = result.metrics[-1]
    verdict = diversity_verdict(point)
    print(
        f"{preset:10s} seed {seed}: {result.steps_done:5d} steps in {result.trained_s:5.0f} s; SWD×1e3 "
        f"{point['swd_mean']:6.1f}; MS-SSIM synthetic {point['ms_ssim_synthetic']:.3f} / real "
        f"{point['ms_ssim_real']:.3f} ({verdict['excess']:+.3f}: {verdict['verdict']})"
    )
    return {"steps": result.steps_done, "swd": point["swd_mean"], "excess": verdict["excess"], **verdict}


def main() -> dict:
    from generator.ml.hardware import cpu_summary

    print(f"CPU: {cpu_summary()}; {len(PRESETS)} presets x {len(SEEDS)} seeds x {MINUTES:g} min each")
    started = time.perf_counter()
    sources = pseudo_subject_sources(SUBJECTS)
    print(f"{SUBJECTS} pseudo-subjects made and aligned in {time.perf_counter() - started:.0f} s")
    runs: dict[str, list[dict]] = {preset: [] for preset in PRESETS}
    with tempfile.TemporaryDirectory() as workdir:
        for seed in SEEDS:  # seeds outermost: a machine that slows down slows both presets alike
            for preset in PRESETS:
                runs[preset].append(train_and_measure(preset, seed, sources, Path(workdir)))
    figures = {}
    for preset, results in runs.items():
        figures[f"{preset}_swd_median"] = statistics.median(run["swd"] for run in results)
        figures[f"{preset}_excess_median"] = statistics.median(run["excess"] for run in results)
        figures[f"{preset}_collapsed_runs"] = sum(run["verdict"] == "collapsed" for run in results)
        figures[f"{preset}_steps_median"] = statistics.median(run["steps"] for run in results)
        print(
            f"{preset:10s} median over {len(SEEDS)} seeds: SWD×1e3 {figures[f'{preset}_swd_median']:.1f}, "
            f"MS-SSIM synthetic − real {figures[f'{preset}_excess_median']:+.3f}, "
            f"{figures[f'{preset}_collapsed_runs']} of {len(SEEDS)} collapsed, "
            f"{figures[f'{preset}_steps_median']:.0f} steps"
        )
    if len(PRESETS) < 2:
        return figures
    new, paper = PRESETS[1], PRESETS[0]
    ratio = figures[f"{new}_swd_median"] / figures[f"{paper}_swd_median"]
    figures["swd_new_over_paper"] = ratio
    print(f"{new} SWD / {paper} SWD: {ratio:.2f}x (target ≤ 0.7x)")
    excess = figures[f"{new}_excess_median"]
    print(f"{new} diversity: {excess:+.3f} from real's (target within ±0.05)")
    return figures


if __name__ == "__main__":
    main()
