"""Rigid (6-DOF) alignment of a loaded T1-weighted volume to the MNI152 2009 template shipped with nilearn.

Conventions, in RAS+ millimetres throughout (SimpleITK's LPS+ is converted at its boundary):

- ``native_world_from_template_world`` maps a point p of template (MNI) space to ``M @ p`` in the
  volume's world space (``LoadedVolume.affine``); ``voxel_from_template_world`` continues to voxel
  indices of ``LoadedVolume.data`` and is the matrix the slicer consumes.
- Angles are Euler angles about x (left-right), y (anterior-posterior) and z (cranio-caudal),
  applied in that order about fixed axes: R = Rz(z) · Ry(y) · Rx(x).
- A manual correction rotates template space about the basal-ganglia centre and shifts the level
  along template z: ``native_world_from_template_world = registered @ correction``.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field, replace

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial.transform import Rotation

from .slicing import DEFAULT_CENTRE_MM
from .volumes import LPS_FROM_RAS, LoadedVolume, sitk_image_from_ras

# The centre point of the paper's slicing: the basal-ganglia level, in MNI mm.
BASAL_GANGLIA_CENTRE_MNI_MM = DEFAULT_CENTRE_MM  # one centre for slicing and corrections

# Registration settings (see align_to_template for why).
SHRINK_FACTORS = (4, 2, 1)
# Smoothing about as wide as each level's voxels: with 2/1/0 mm a start 15-20° off (after the
# search) was sometimes not pulled in; 4/2/0 mm was, and converged in fewer iterations.
SMOOTHING_SIGMAS_MM = (4.0, 2.0, 0.0)
SAMPLING_PERCENTAGE = 0.05
HISTOGRAM_BINS = 50
LEARNING_RATE = 4.0  # first step: up to about 4 mm of brain motion (scales from physical shift)
MIN_STEP = 1e-3
MAX_ITERATIONS_PER_LEVEL = 200
# The coarse search before descent: a grid of head pitch (rotation about x) and of shifts along y
# and z, where the centre-of-mass start is least reliable (a neck in the field of view pulls it
# down by several cm; heads lie nodded by 10-20° when the scan was not planned along AC-PC).
SEARCH_SHRINK_FACTOR = 4
SEARCH_SMOOTHING_MM = 4.0
SEARCH_PITCH_STEP_DEG = 10.0
SEARCH_PITCH_STEPS = 2  # each way: -20…+20°
SEARCH_SHIFT_STEP_MM = 10.0
SEARCH_Y_STEPS = 2  # each way: -20…+20 mm
SEARCH_Z_STEPS = 4  # each way: -40…+40 mm
# nilearn's own brain-mask threshold on the template rescaled to 0..1.
BRAIN_MASK_THRESHOLD = 0.2
# The metric mask reaches this far past the brain, so the brain's outline against dark CSF counts.
METRIC_MASK_MARGIN_MM = 3
# Hot voxels (vessels, fat, artefacts) above this percentile would squeeze the histogram's bins.
MOVING_INTENSITY_PERCENTILE = 99.5


@dataclass(frozen=True)
class ManualCorrection:
    """An admin's correction: extra rotation about the basal-ganglia centre, and a level shift along z."""

    lr_deg: float = 0.0
    ap_deg: float = 0.0
    cc_deg: float = 0.0
    level_mm: float = 0.0

    @property
    def template_from_corrected_template(self) -> np.ndarray:
        """4x4: a point of the corrected template frame -> the template frame the registration found.

        Rotation about the centre c, then a shift along z: p -> R (p - c) + c + level · ẑ, so the
        section the slicer takes at the level z = c_z now runs ``level_mm`` higher, tilted by R."""
        centre = np.asarray(BASAL_GANGLIA_CENTRE_MNI_MM)
        matrix = np.eye(4)
        matrix[:3, :3] = rotation_matrix_deg(self.lr_deg, self.ap_deg, self.cc_deg)
        matrix[:3, 3] = centre - matrix[:3, :3] @ centre + np.array([0.0, 0.0, self.level_mm])
        return matrix


@dataclass(frozen=True, eq=False)
class RigidAlignment:
    """The result of align_to_template, with an optional manual correction on top of it."""

    registered_native_world_from_template_world: np.ndarray  # 4x4 RAS mm, the registration alone
    native_affine: np.ndarray  # LoadedVolume.affine of the aligned volume
    final_metric: float  # Mattes mutual information at the end (negative; lower is better)
    iterations: int  # optimizer iterations over all resolution levels
    seconds: float
    seed: int = 0
    correction: ManualCorrection = field(default_factory=ManualCorrection)

    @property
    def native_world_from_template_world(self) -> np.ndarray:
        return self.registered_native_world_from_template_world @ self.correction.template_from_corrected_template

    @property
    def voxel_from_template_world(self) -> np.ndarray:
        """Template mm -> voxel indices of the volume's data: the matrix the slicer consumes."""
        return np.linalg.inv(self.native_affine) @ self.native_world_from_template_world

    @property
    def rotation_deg(self) -> tuple[float, float, float]:
        """Angles about x, y, z of native_world_from_template_world (R = Rz · Ry · Rx)."""
        return euler_deg_from_matrix(self.native_world_from_template_world[:3, :3])

    @property
    def translation_mm(self) -> tuple[float, float, float]:
        """Where the template's origin lands in native world mm."""
        return tuple(float(v) for v in self.native_world_from_template_world[:3, 3])

    def with_correction(
        self, lr_deg: float = 0.0, ap_deg: float = 0.0, cc_deg: float = 0.0, level_mm: float = 0.0
    ) -> RigidAlignment:
        """The same registration with this correction in place of any earlier one (values are absolute,
        as an admin's form holds them, so applying the same correction twice changes nothing)."""
        return replace(self, correction=ManualCorrection(lr_deg, ap_deg, cc_deg, level_mm))

    def to_json(self) -> dict:
        """Plain JSON-ready values, for storing beside the volume; from_json reads them back."""
        return {
            "registered_native_world_from_template_world": self.registered_native_world_from_template_world.tolist(),
            "native_affine": self.native_affine.tolist(),
            "final_metric": self.final_metric,
            "iterations": self.iterations,
            "seconds": self.seconds,
            "seed": self.seed,
            "correction": vars(self.correction).copy(),
            # Derived values, for people reading the record; from_json ignores them.
            "rotation_deg": list(self.rotation_deg),
            "translation_mm": list(self.translation_mm),
        }

    @classmethod
    def from_json(cls, values: dict) -> RigidAlignment:
        return cls(
            registered_native_world_from_template_world=np.array(values["registered_native_world_from_template_world"]),
            native_affine=np.array(values["native_affine"]),
            final_metric=float(values["final_metric"]),
            iterations=int(values["iterations"]),
            seconds=float(values["seconds"]),
            seed=int(values.get("seed", 0)),
            correction=ManualCorrection(**values.get("correction", {})),
        )


def rotation_matrix_deg(x_deg: float, y_deg: float, z_deg: float) -> np.ndarray:
    """3x3 rotation by the given angles about x, then y, then z (fixed axes): Rz · Ry · Rx."""
    return Rotation.from_euler("xyz", [x_deg, y_deg, z_deg], degrees=True).as_matrix()


def euler_deg_from_matrix(rotation: np.ndarray) -> tuple[float, float, float]:
    """The inverse of rotation_matrix_deg."""
    return tuple(float(v) for v in Rotation.from_matrix(rotation).as_euler("xyz", degrees=True))


@functools.lru_cache(maxsize=1)
def load_template() -> tuple[sitk.Image, sitk.Image]:
    """The MNI152 2009 T1 template (1 mm, skull-stripped, 0..1) and its brain mask, from nilearn's
    packaged files (no download), as SimpleITK images. Cached: callers must not modify them."""
    from nilearn import datasets  # imported here: nilearn takes seconds to import

    template = datasets.load_mni152_template(resolution=1)
    template_data = np.asarray(template.get_fdata(dtype=np.float32))
    # The thresholded template leaves the dark ventricles out; brain voxels include them.
    brain = ndimage.binary_fill_holes(template_data > BRAIN_MASK_THRESHOLD)
    template_image = sitk_image_from_ras(template_data, template.affine)
    mask_image = sitk_image_from_ras(brain.astype(np.uint8), template.affine)
    return template_image, mask_image


@functools.lru_cache(maxsize=1)
def _metric_mask() -> sitk.Image:
    _, brain_mask = load_template()
    return sitk.BinaryDilate(brain_mask, [METRIC_MASK_MARGIN_MM] * 3)


def align_to_template(volume: LoadedVolume, *, seed: int = 0) -> RigidAlignment:
    """Rigidly register the volume to the template (template fixed, volume moving).

    Mattes mutual information copes with any T1-weighted contrast and scanner scaling; sampled
    only inside the template's brain mask (plus a few mm of CSF rim), it ignores the subject's
    skull, neck and field-of-view edges, which the skull-stripped template lacks. The transform
    starts from the images' centres of mass (MOMENTS: closer than the field-of-view centres, but
    pulled down by a neck), then a coarse exhaustive search over head pitch and y/z shifts puts it
    within reach of the descent; three resolution levels (shrink 4/2/1, smoothing 4/2/0 mm) refine
    it, and 5 % random sampling with a fixed seed keeps it fast and reproducible. Regular-step
    gradient descent with scales from physical shift treats a degree and a millimetre alike.
    """
    started = time.perf_counter()
    template, _ = load_template()
    data = volume.data
    # Shifted to start at 0 so the centre of mass is that of the head, whatever the scanner's offset.
    floor = float(data.min())
    ceiling = float(np.percentile(data[data > floor], MOVING_INTENSITY_PERCENTILE))
    moving = sitk_image_from_ras((np.clip(data, floor, ceiling) - floor).astype(np.float32), volume.affine)

    initial = sitk.CenteredTransformInitializer(
        template, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    search = _masked_mutual_information(seed)
    search.SetShrinkFactorsPerLevel([SEARCH_SHRINK_FACTOR])
    search.SetSmoothingSigmasPerLevel([SEARCH_SMOOTHING_MM])
    # Euler3DTransform parameters: angles about x, y, z (radians), then the translation (mm).
    search.SetOptimizerAsExhaustive([SEARCH_PITCH_STEPS, 0, 0, 0, SEARCH_Y_STEPS, SEARCH_Z_STEPS])
    search.SetOptimizerScales([np.radians(SEARCH_PITCH_STEP_DEG), 1, 1, 1, SEARCH_SHIFT_STEP_MM, SEARCH_SHIFT_STEP_MM])
    search.SetInitialTransform(initial, inPlace=True)
    search.Execute(template, moving)  # leaves ``initial`` at the best grid point

    method = _masked_mutual_information(seed)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=LEARNING_RATE,
        minStep=MIN_STEP,
        numberOfIterations=MAX_ITERATIONS_PER_LEVEL,
        relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-8,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(SHRINK_FACTORS))
    method.SetSmoothingSigmasPerLevel(list(SMOOTHING_SIGMAS_MM))
    method.SetInitialTransform(initial, inPlace=True)
    iterations = [0]
    method.AddCommand(sitk.sitkIterationEvent, lambda: iterations.__setitem__(0, iterations[0] + 1))
    method.Execute(template, moving)

    return RigidAlignment(
        registered_native_world_from_template_world=ras_matrix_from_sitk_transform(initial),
        native_affine=np.array(volume.affine, dtype=np.float64),
        final_metric=float(method.GetMetricValue()),
        iterations=iterations[0],
        seconds=time.perf_counter() - started,
        seed=seed,
    )


def _masked_mutual_information(seed: int) -> sitk.ImageRegistrationMethod:
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=HISTOGRAM_BINS)
    method.SetMetricSamplingStrategy(method.RANDOM)
    # SimpleITK reads seed 0 as "seed from the wall clock", so shift by one to stay reproducible.
    method.SetMetricSamplingPercentage(SAMPLING_PERCENTAGE, seed + 1)
    method.SetMetricFixedMask(_metric_mask())
    method.SetInterpolator(sitk.sitkLinear)
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()  # mm, whatever the volume's voxel size
    return method


def brain_mask_in_native(volume: LoadedVolume, alignment: RigidAlignment) -> np.ndarray:
    """The template's brain mask in the volume's voxel grid (nearest neighbour), as bool [x, y, z]."""
    _, brain_mask = load_template()
    reference = sitk_image_from_ras(np.zeros(volume.shape, dtype=np.uint8), volume.affine)
    # Resample pulls each output (native) point from the input (template): template <- native.
    template_from_native = np.linalg.inv(alignment.native_world_from_template_world)
    resampled = sitk.Resample(
        brain_mask, reference, sitk_transform_from_ras_matrix(template_from_native), sitk.sitkNearestNeighbor, 0
    )
    return sitk.GetArrayViewFromImage(resampled).transpose(2, 1, 0).astype(bool)


def ras_matrix_from_sitk_transform(transform: sitk.Transform) -> np.ndarray:
    """4x4 RAS matrix of any affine SimpleITK transform (which maps LPS points)."""
    origin = np.array(transform.TransformPoint((0.0, 0.0, 0.0)))
    lps = np.eye(4)
    for axis in range(3):
        lps[:3, axis] = np.array(transform.TransformPoint(tuple(np.eye(3)[axis]))) - origin
    lps[:3, 3] = origin
    return LPS_FROM_RAS @ lps @ LPS_FROM_RAS


def sitk_transform_from_ras_matrix(matrix: np.ndarray) -> sitk.AffineTransform:
    """A SimpleITK transform (on LPS points) doing what the 4x4 RAS matrix does."""
    lps = LPS_FROM_RAS @ np.asarray(matrix, dtype=np.float64) @ LPS_FROM_RAS
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(tuple(float(v) for v in lps[:3, :3].ravel()))
    transform.SetTranslation(tuple(float(v) for v in lps[:3, 3]))
    return transform
