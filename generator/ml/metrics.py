"""GAN quality figures without a pretrained network: sliced Wasserstein distance and MS-SSIM diversity.

Images are float32 in [−1, 1], shaped (n, s, s) or (n, s, s, 1), real and synthetic at the same size.

Sliced Wasserstein distance (Karras et al. 2018, "Progressive growing of GANs", section 5 and
their ``metrics/sliced_wasserstein.py``, on one channel)
    Each image becomes a Laplacian pyramid (the 5×5 binomial filter of ``cv2.pyrDown``, mirrored
    edges) with one level per resolution from s down to 16: the band-pass levels and, last, the
    16×16 low-pass residual. From each level, ``descriptors_per_image`` 7×7 neighbourhoods are cut
    at random positions; each set's descriptors are normalised by that set's mean and standard
    deviation (Karras's per-channel normalisation; so a global brightness or contrast change of
    the whole set is not counted, while a changed structure is). The distance is the mean over
    ``projections`` random unit directions of the 1-D Wasserstein distance between the sorted
    projections of the two sets, reported ×10³ as in Karras's tables, per level and their mean.
    Descriptors, directions and positions are drawn from ``seed``: the same real set gives the same
    real descriptors at every evaluation. SWD of a set against itself is not 0 (independent
    positions) but its sampling floor.

MS-SSIM diversity (Odena et al. 2017: the mean MS-SSIM of random pairs of one set; lower is more diverse)
    ``tf.image.ssim_multiscale`` on images mapped to [0, 1] (max_val 1). Its default five scales
    need 256² (the coarsest scale must still hold the 11-pixel filter), so an s² image uses
    ``ms_ssim_scales(s)`` = floor(log2(s / 11)) + 1 scales: 3 at 64², 4 at 128², 5 at 256², with the
    first that many of TensorFlow's default power factors, renormalised to sum to 1. Figures with
    different scale counts do not compare; the count is recorded with each figure. Synthetic pairs
    are read next to real pairs: a generator that collapses onto a few images scores higher than
    the real slices do.

The counts below are fixed so runs compare (Karras took 128 descriptors from each of 16,384
images; 64 from each of 512 keep the sorts quick). ``quality_metrics`` on 512 images of each kind
took 3.7 s at 64², 8.5 s at 128² and 25–35 s at 256² on two CPU cores that a training run shared.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

SAMPLE_COUNT = 512  # real and synthetic images per evaluation
DESCRIPTORS_PER_IMAGE = 64  # Karras's nhoods_per_image was 128 (see above)
NEIGHBOURHOOD = 7  # Karras's nhood_size: 7×7 descriptors
PROJECTIONS = 512  # Karras's dir_repeats × dirs_per_repeat = 4 × 128
PROJECTIONS_PER_BATCH = 128
SMALLEST_LEVEL = 16  # the pyramid stops at 16×16, as Karras's does
MS_SSIM_PAIRS = 512
MS_SSIM_FILTER_SIZE = 11
MS_SSIM_POWER_FACTORS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # TensorFlow's defaults (Wang et al. 2003)
MS_SSIM_CHANNELS = 64  # pairs per image as channels: twice as fast on a CPU as one image of them all
MS_SSIM_PIXELS_PER_BATCH = 2**21  # 512 pairs at 64², 32 at 256²: bounds TensorFlow's intermediates
SWD_SCALE = 1e3  # SWD is reported ×10³, as in Karras et al.'s tables

# cv2.pyrDown's filter, separable: the 5×5 kernel is the outer product of [1, 4, 6, 4, 1] / 16 with itself.
_BINOMIAL = np.array([1, 4, 6, 4, 1], dtype=np.float32) / 16.0


class MsSsimResult(NamedTuple):
    mean: float
    scales: int
    pairs: int


def sliced_wasserstein_distance(
    real: np.ndarray,
    synthetic: np.ndarray,
    *,
    seed: int,
    descriptors_per_image: int = DESCRIPTORS_PER_IMAGE,
    projections: int = PROJECTIONS,
) -> dict:
    """SWD ×10³ between two equally large sets: ``{"levels": {"64": …, "32": …, "16": …}, "mean": …}``.

    Levels are keyed by their resolution, finest first; the last is the low-pass residual.
    """
    real, synthetic = _as_images(real), _as_images(synthetic)
    if real.shape != synthetic.shape:
        raise ValueError(f"SWD compares sets of the same shape, got {real.shape} and {synthetic.shape}")
    size = real.shape[1]
    if size < SMALLEST_LEVEL:
        raise ValueError(f"images must be at least {SMALLEST_LEVEL}² for SWD, got {size}²")
    level_count = int(math.log2(size // SMALLEST_LEVEL)) + 1
    real_rng, synthetic_rng, direction_rng = (np.random.default_rng([seed, stream]) for stream in (1, 2, 3))
    levels = {}
    with ThreadPoolExecutor(2) as pool:  # numpy's sort and matmul release the GIL: one set per core
        pyramids = pool.map(lambda images: laplacian_pyramid(images, level_count), (real, synthetic))
        for real_level, synthetic_level in zip(*pyramids, strict=True):
            real_descriptors = _descriptors(real_level, descriptors_per_image, real_rng)
            synthetic_descriptors = _descriptors(synthetic_level, descriptors_per_image, synthetic_rng)
            distances = []
            for start in range(0, projections, PROJECTIONS_PER_BATCH):
                count = min(PROJECTIONS_PER_BATCH, projections - start)
                directions = direction_rng.standard_normal((count, real_descriptors.shape[1]))
                directions = (directions / np.linalg.norm(directions, axis=1, keepdims=True)).astype(np.float32)
                sorted_real, sorted_synthetic = pool.map(
                    _sorted_projections, (real_descriptors, synthetic_descriptors), (directions, directions)
                )
                distances.append(np.abs(sorted_real - sorted_synthetic).mean(axis=1))
            levels[str(real_level.shape[1])] = float(np.concatenate(distances).mean() * SWD_SCALE)
    return {"levels": levels, "mean": float(np.mean(list(levels.values())))}


def laplacian_pyramid(images: np.ndarray, level_count: int) -> list[np.ndarray]:
    """Levels [n, s, s], [n, s/2, s/2], …: band-pass levels, then the low-pass residual (as cv2's pyrDown/pyrUp)."""
    pyramid = [_as_images(images)]
    for _ in range(1, level_count):
        smaller = _binomial_filter(pyramid[-1])[:, ::2, ::2]
        upsampled = np.zeros_like(pyramid[-1])
        upsampled[:, ::2, ::2] = smaller
        pyramid[-1] = pyramid[-1] - _binomial_filter(upsampled) * 4.0  # ×4: a quarter of the pixels carry it
        pyramid.append(smaller)
    return pyramid


def ms_ssim_scales(size: int) -> int:
    """How many MS-SSIM scales an s² image holds: the coarsest must still be at least 11 pixels wide."""
    if size < MS_SSIM_FILTER_SIZE:
        raise ValueError(f"MS-SSIM needs images of at least {MS_SSIM_FILTER_SIZE}², got {size}²")
    return min(len(MS_SSIM_POWER_FACTORS), math.floor(math.log2(size / MS_SSIM_FILTER_SIZE)) + 1)


def ms_ssim_power_factors(scales: int) -> tuple[float, ...]:
    """TensorFlow's first ``scales`` power factors, renormalised to sum to 1."""
    kept = MS_SSIM_POWER_FACTORS[:scales]
    return tuple(factor / sum(kept) for factor in kept)


def ms_ssim(first: np.ndarray, second: np.ndarray) -> float:
    """Mean MS-SSIM over the pairs (first[i], second[i]), with ``ms_ssim_scales(s)`` scales.

    Pairs go in as channels, up to ``MS_SSIM_CHANNELS`` per image: ``ssim_multiscale`` computes each
    channel on its own and averages them, so the mean over images and channels is the mean over
    pairs, and TensorFlow's depthwise convolution, slow on one channel on a CPU, runs over many.
    """
    first, second = _as_images(first), _as_images(second)
    if first.shape != second.shape or not len(first):
        raise ValueError(f"MS-SSIM compares pairs of the same shape, got {first.shape} and {second.shape}")
    count, size = first.shape[:2]
    power_factors = ms_ssim_power_factors(ms_ssim_scales(size))
    group = max(1, min(MS_SSIM_CHANNELS, count, MS_SSIM_PIXELS_PER_BATCH // (size * size)))
    per_batch = group * max(1, MS_SSIM_PIXELS_PER_BATCH // (size * size * group))
    total = 0.0
    for start in range(0, count, per_batch):
        stop = min(count, start + per_batch)
        full = start + (stop - start) // group * group
        # Whole groups of channels, then the rest as one image of fewer channels.
        for part in (slice(start, full), slice(full, stop)):
            if part.stop > part.start:
                total += _ms_ssim_sum(first[part], second[part], min(group, part.stop - part.start), power_factors)
    return total / count


def ms_ssim_diversity(images: np.ndarray, *, pairs: int = MS_SSIM_PAIRS, seed: int) -> MsSsimResult:
    """Mean MS-SSIM over ``pairs`` random pairs of two different images of the set (drawn with ``seed``)."""
    images = _as_images(images)
    if len(images) < 2:
        raise ValueError("MS-SSIM diversity needs at least two images")
    rng = np.random.default_rng([seed, 4])
    first = rng.integers(len(images), size=pairs)
    second = (first + rng.integers(1, len(images), size=pairs)) % len(images)  # never the image itself
    mean = ms_ssim(images[first], images[second])
    return MsSsimResult(mean=mean, scales=ms_ssim_scales(images.shape[1]), pairs=pairs)


def quality_metrics(real: np.ndarray, synthetic: np.ndarray, *, seed: int, sample_count: int = SAMPLE_COUNT) -> dict:
    """SWD between the first ``sample_count`` real and synthetic images, and MS-SSIM diversity of each, as JSON."""
    real, synthetic = _as_images(real), _as_images(synthetic)
    if len(real) < sample_count or len(synthetic) < sample_count:
        raise ValueError(f"need {sample_count} images of each kind, got {len(real)} real, {len(synthetic)} synthetic")
    real, synthetic = real[:sample_count], synthetic[:sample_count]
    swd = sliced_wasserstein_distance(real, synthetic, seed=seed)
    diversity_synthetic = ms_ssim_diversity(synthetic, seed=seed)
    diversity_real = ms_ssim_diversity(real, seed=seed)  # the same pair indices on both sets
    return {
        "swd_mean": round(swd["mean"], 4),
        "swd_levels": {level: round(value, 4) for level, value in swd["levels"].items()},
        "ms_ssim_synthetic": round(diversity_synthetic.mean, 4),
        "ms_ssim_real": round(diversity_real.mean, 4),
        "scales": diversity_synthetic.scales,
        "pairs": diversity_synthetic.pairs,
        "sample_count": sample_count,
    }


COLLAPSE_MARGIN = 0.10  # the default of settings.GENERATOR_COLLAPSE_MARGIN


def diversity_verdict(point: dict, *, margin: float = COLLAPSE_MARGIN) -> dict:
    """Whether a measured generator has collapsed: its synthetic pairs far more alike than real pairs.

    "collapsed" when MS-SSIM(synthetic pairs) − MS-SSIM(real pairs) exceeds ``margin``, at the same
    scales (one point of ``quality_metrics``); otherwise "diverse". A generator that puts out one
    image scores 1.0 against real slices' 0.6–0.7 at 64².
    """
    excess = point["ms_ssim_synthetic"] - point["ms_ssim_real"]
    return {
        "verdict": "collapsed" if excess > margin else "diverse",
        "ms_ssim_synthetic": point["ms_ssim_synthetic"],
        "ms_ssim_real": point["ms_ssim_real"],
        "excess": round(excess, 4),
        "margin": margin,
        "scales": point["scales"],
        "step": point["step"],
    }


def _as_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must be (n, s, s) or (n, s, s, 1), got {images.shape}")
    return images


def _binomial_filter(images: np.ndarray) -> np.ndarray:
    """The 5×5 binomial filter on [n, s, s], edges mirrored about the edge pixel (cv2's BORDER_REFLECT_101)."""
    filtered = images
    for axis in (1, 2):
        padded = np.pad(filtered, [(2, 2) if index == axis else (0, 0) for index in range(3)], mode="reflect")
        size = filtered.shape[axis]
        filtered = sum(
            weight * padded.take(np.arange(tap, tap + size), axis=axis) for tap, weight in enumerate(_BINOMIAL)
        )
    return filtered


def _sorted_projections(descriptors: np.ndarray, directions: np.ndarray) -> np.ndarray:
    # Rows (direction, descriptor), so each sort runs over contiguous memory.
    return np.sort(directions @ descriptors.T, axis=1)


def _ms_ssim_sum(first: np.ndarray, second: np.ndarray, channels: int, power_factors: tuple[float, ...]) -> float:
    """The sum of MS-SSIM over pairs [n, s, s], n a multiple of ``channels``, laid out as [n / c, s, s, c]."""
    import tensorflow as tf

    size = first.shape[1]
    # [−1, 1] → [0, 1]: SSIM's luminance term assumes non-negative intensities.
    images = [(pair.reshape(-1, channels, size, size).transpose(0, 2, 3, 1) + 1.0) / 2.0 for pair in (first, second)]
    per_image = tf.image.ssim_multiscale(
        *images, max_val=1.0, power_factors=power_factors, filter_size=MS_SSIM_FILTER_SIZE
    )
    return float(np.sum(per_image.numpy(), dtype=np.float64)) * channels


def _descriptors(level: np.ndarray, per_image: int, rng: np.random.Generator) -> np.ndarray:
    """``per_image`` random 7×7 neighbourhoods of each image, as rows [n · per_image, 49], normalised per set."""
    count, size = len(level) * per_image, level.shape[1]
    half = NEIGHBOURHOOD // 2
    offsets = np.arange(-half, half + 1)
    image_index = np.repeat(np.arange(len(level)), per_image)[:, None, None]
    rows = rng.integers(half, size - half, size=count)[:, None, None] + offsets[None, :, None]
    columns = rng.integers(half, size - half, size=count)[:, None, None] + offsets[None, None, :]
    descriptors = level[image_index, rows, columns].reshape(count, -1)
    descriptors -= descriptors.mean()
    spread = descriptors.std()
    return descriptors / spread if spread > 0 else descriptors  # a flat level (a collapsed generator) stays 0
