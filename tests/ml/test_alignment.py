"""Rigid alignment to the MNI152 template: known transforms are recovered, corrections compose as documented."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from generator.ml.alignment import (
    BASAL_GANGLIA_CENTRE_MNI_MM,
    RigidAlignment,
    load_template,
    rotation_matrix_deg,
)
from generator.ml.volumes import ras_affine_from_sitk
from tests.ml.alignment_cases import CENTRE, rigid


def test_template_ships_with_nilearn_and_is_cached():
    template, brain_mask = load_template()
    assert template.GetSize() == (197, 233, 189)
    assert template.GetSpacing() == (1.0, 1.0, 1.0)
    assert load_template()[0] is template
    mask = sitk.GetArrayViewFromImage(brain_mask)
    assert set(np.unique(mask)) == {0, 1}
    assert 1.3e6 < mask.sum() < 2.2e6, "about 1.5 litres of brain"
    # nilearn's affine, seen through the LPS round trip: the grid's first voxel sits at (-98, -134, -72) mm.
    assert ras_affine_from_sitk(template)[:3, 3] == pytest.approx([-98.0, -134.0, -72.0])


def correction_case() -> RigidAlignment:
    return RigidAlignment(
        registered_native_world_from_template_world=rigid((2.0, 1.0, -3.0), (4.0, -2.0, 7.0)),
        native_affine=np.diag([0.94, 0.94, 1.5, 1.0]),
        final_metric=-0.9,
        iterations=100,
        seconds=9.0,
    )


def test_correction_rotates_about_the_centre_and_shifts_the_level():
    alignment = correction_case()
    corrected = alignment.with_correction(lr_deg=5.0, ap_deg=-3.0, cc_deg=2.0, level_mm=2.5)
    registered = alignment.registered_native_world_from_template_world
    shifted_centre = CENTRE + np.array([0.0, 0.0, 2.5, 0.0])

    # The centre point keeps its place apart from the level shift along template z...
    assert corrected.native_world_from_template_world @ CENTRE == pytest.approx(registered @ shifted_centre)
    # ...and points around it turn by R = Rz(2°) · Ry(-3°) · Rx(5°) about it.
    offset = np.array([10.0, 20.0, -30.0, 0.0])
    rotated = np.r_[rotation_matrix_deg(5.0, -3.0, 2.0) @ offset[:3], 0.0]
    assert corrected.native_world_from_template_world @ (CENTRE + offset) == pytest.approx(
        registered @ (shifted_centre + rotated)
    )
    # A pure rotation about x tilts the section as a nod of the head: lr_deg shows up in rotation_deg.
    nodded = RigidAlignment(**{**vars(alignment), "registered_native_world_from_template_world": np.eye(4)})
    assert nodded.with_correction(lr_deg=4.0).rotation_deg == pytest.approx((4.0, 0.0, 0.0))


def test_correction_is_recorded_and_replaces_the_earlier_one():
    alignment = correction_case()
    once = alignment.with_correction(lr_deg=5.0, level_mm=2.0)
    twice = once.with_correction(lr_deg=5.0, level_mm=2.0)
    assert twice.native_world_from_template_world == pytest.approx(once.native_world_from_template_world)
    assert (once.correction.lr_deg, once.correction.level_mm) == (5.0, 2.0)
    assert alignment.correction.lr_deg == 0.0, "the original is unchanged"
    cleared = once.with_correction()
    assert cleared.native_world_from_template_world == pytest.approx(alignment.native_world_from_template_world)
    assert once.registered_native_world_from_template_world is alignment.registered_native_world_from_template_world


def test_alignment_round_trips_through_json():
    alignment = correction_case().with_correction(ap_deg=-2.0, level_mm=1.5)
    restored = RigidAlignment.from_json(json.loads(json.dumps(alignment.to_json())))
    assert restored.native_world_from_template_world == pytest.approx(alignment.native_world_from_template_world)
    assert restored.correction == alignment.correction
    assert restored.voxel_from_template_world == pytest.approx(alignment.voxel_from_template_world)


def test_rotation_convention_is_x_then_y_then_z():
    quarter_about_z = rotation_matrix_deg(0.0, 0.0, 90.0)
    assert quarter_about_z @ [1.0, 0.0, 0.0] == pytest.approx([0.0, 1.0, 0.0])
    combined = rotation_matrix_deg(10.0, 20.0, 30.0)
    assert combined == pytest.approx(
        rotation_matrix_deg(0, 0, 30.0) @ rotation_matrix_deg(0, 20.0, 0) @ rotation_matrix_deg(10.0, 0, 0)
    )


def test_correction_shares_the_slicers_geometry_convention():
    from generator.ml.slicing import DEFAULT_CENTRE_MM, rotation_matrices

    assert DEFAULT_CENTRE_MM == BASAL_GANGLIA_CENTRE_MNI_MM
    assert rotation_matrix_deg(5.0, -3.0, 2.0) == pytest.approx(rotation_matrices(5.0, -3.0, 2.0)[0])
