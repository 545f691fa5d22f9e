"""Benchmark: what the demo's pseudo-subjects cost (make one, align it) against aligning the template.

The demo used to ingest and align one volume, the 1 mm MNI152 template; it now makes eight
pseudo-subjects at 2 mm and aligns each (#18). Baseline, timed in the same run: the rigid
alignment of the 1 mm template. Also reported: how well the alignment undoes each recipe's pose.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generator.ml.alignment import align_to_template, euler_deg_from_matrix, load_template
from generator.ml.pseudo_subjects import PseudoSubjectRecipe, make_pseudo_subject
from generator.ml.volumes import LoadedVolume

SEEDS = (0, 1, 2, 3)
DEMO_SUBJECTS = 8


def _template() -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib
    import nilearn

    path = Path(nilearn.__file__).parent / "datasets" / "data" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    image = nib.load(path)
    return image.get_fdata(dtype=np.float32), image.affine


def _timed(function, *args, **kwargs):
    started = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - started


def main() -> dict:
    data, affine = _template()
    load_template()  # the template's own loading is paid once by every worker; not counted below
    template_volume = LoadedVolume(data=data, affine=affine, voxel_size_mm=(1.0, 1.0, 1.0), source_format="nifti")
    _, baseline_s = _timed(align_to_template, template_volume)
    print(f"baseline: aligning the 1 mm template (the old demo's one volume): {baseline_s:.1f} s")

    make_times, align_times, angle_errors = [], [], []
    for seed in SEEDS:
        recipe = PseudoSubjectRecipe.draw(seed)
        (subject, subject_affine), make_s = _timed(make_pseudo_subject, data, affine, recipe)
        loaded = LoadedVolume(data=subject, affine=subject_affine, voxel_size_mm=(2.0, 2.0, 2.0), source_format="nifti")
        alignment, align_s = _timed(align_to_template, loaded)
        recovered = euler_deg_from_matrix(alignment.native_world_from_template_world[:3, :3])
        error = float(np.max(np.abs(np.subtract(recovered, recipe.rotation_deg))))
        make_times.append(make_s)
        align_times.append(align_s)
        angle_errors.append(error)
        print(f"seed {seed}: made in {make_s:.2f} s, aligned in {align_s:.1f} s, worst angle off by {error:.2f}°")

    per_subject = float(np.median(make_times) + np.median(align_times))
    figures = {
        "template_alignment_s": round(baseline_s, 2),
        "pseudo_subject_make_s": round(float(np.median(make_times)), 2),
        "pseudo_subject_align_s": round(float(np.median(align_times)), 2),
        "pseudo_subject_vs_template_alignment": round(per_subject / baseline_s, 2),
        "demo_subjects_vs_one_template": round(DEMO_SUBJECTS * per_subject / baseline_s, 2),
        "worst_angle_error_deg": round(max(angle_errors), 2),
    }
    print(
        f"one pseudo-subject (make + align, medians) = {figures['pseudo_subject_vs_template_alignment']}× the "
        f"template's alignment; the demo's {DEMO_SUBJECTS} = {figures['demo_subjects_vs_one_template']}×"
    )
    return figures


if __name__ == "__main__":
    main()
