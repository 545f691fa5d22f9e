"""Quality metrics: sliced Wasserstein distance on Laplacian pyramids and MS-SSIM diversity."""

import json
import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from generator.ml.metrics import (
    MS_SSIM_POWER_FACTORS,
    laplacian_pyramid,
    ms_ssim,
    ms_ssim_diversity,
    ms_ssim_power_factors,
    ms_ssim_scales,
    quality_metrics,
    sliced_wasserstein_distance,
)

COUNT = 128


def phantoms(count: int = COUNT, size: int = 64, seed: int = 0, background: float = -1.0) -> np.ndarray:
    """Head-like ellipses with blobs of random intensity inside, a little noise, in [−1, 1]: a stand-in for slices."""
    rng = np.random.default_rng(seed)
    coordinates = np.linspace(-1, 1, size)
    rows, columns = np.meshgrid(coordinates, coordinates, indexing="ij")
    images = np.full((count, size, size), background, np.float32)
    for image in images:
        centre_row, centre_column = rng.uniform(-0.1, 0.1, 2)
        radius_row, radius_column = rng.uniform(0.6, 0.85, 2)
        image[((rows - centre_row) / radius_row) ** 2 + ((columns - centre_column) / radius_column) ** 2 < 1] = 0.2
        for _ in range(6):
            blob_row, blob_column = rng.uniform(-0.5, 0.5, 2)
            radius = rng.uniform(0.05, 0.2)
            blob = (rows - centre_row - blob_row) ** 2 + (columns - centre_column - blob_column) ** 2 < radius**2
            image[blob] = rng.uniform(-0.6, 0.9)
        image += rng.normal(0, 0.03, image.shape).astype(np.float32)
    return np.clip(images, -1, 1)


@pytest.fixture(scope="module")
def real() -> np.ndarray:
    return phantoms(seed=0)


@pytest.fixture(scope="module")
def same_kind() -> np.ndarray:
    """Another draw of the same distribution: its SWD to ``real`` is the sampling floor."""
    return phantoms(seed=1)


def swd(first: np.ndarray, second: np.ndarray) -> float:
    # A quarter of the default projections keeps the tests quick; the descriptors dominate the noise.
    return sliced_wasserstein_distance(first, second, seed=0, projections=128)["mean"]


def test_swd_of_a_set_against_itself_is_its_sampling_floor_far_below_noise(real, same_kind):
    noise = np.random.default_rng(2).uniform(-1, 1, real.shape).astype(np.float32)
    itself, floor, against_noise = swd(real, real), swd(real, same_kind), swd(real, noise)
    # Positions are drawn independently for the two sets, so a set against itself is not exactly 0.
    assert itself < 1.5 * floor and itself < 0.15 * against_noise
    result = sliced_wasserstein_distance(real, real[..., None], seed=0, projections=128)  # (n, s, s, 1) too
    assert list(result["levels"]) == ["64", "32", "16"] and result["mean"] == pytest.approx(itself)
    assert result["mean"] == pytest.approx(np.mean(list(result["levels"].values())))
    assert swd(real, same_kind) == swd(real, same_kind)  # the seed fixes positions and directions


def test_swd_grows_with_blur_a_grey_background_and_a_shift(real, same_kind):
    floor = swd(real, same_kind)
    slight, strong = (swd(real, gaussian_filter(same_kind, (0, sigma, sigma))) for sigma in (0.7, 1.5))
    assert floor < slight < strong
    blurred = sliced_wasserstein_distance(real, gaussian_filter(same_kind, (0, 1.5, 1.5)), seed=0, projections=128)
    assert blurred["levels"]["64"] > blurred["levels"]["16"]  # blur takes the finest level's detail first
    # A grey background (the DCGAN's failure mode before it learns black) changes the structure.
    assert swd(real, phantoms(seed=1, background=-0.6)) > 1.5 * floor
    assert swd(real, np.roll(same_kind, 8, axis=2)) > 2 * floor  # shifted off centre, wrapped round
    # Each set is normalised by its own statistics (Karras et al.): a global offset or contrast is not counted.
    assert swd(real, same_kind * 0.5 + 0.2) == pytest.approx(floor, rel=1e-3)


def test_laplacian_pyramid_levels_and_a_flat_image():
    images = np.full((2, 64, 64), 0.3, np.float32)
    levels = laplacian_pyramid(images, 3)
    assert [level.shape for level in levels] == [(2, 64, 64), (2, 32, 32), (2, 16, 16)]
    np.testing.assert_allclose(levels[0], 0, atol=1e-6)  # no detail in a flat image
    np.testing.assert_allclose(levels[-1], 0.3, atol=1e-6)  # the low-pass residual keeps its level
    # A collapsed generator (every image flat) still gets a finite distance.
    assert math.isfinite(swd(phantoms(16), images.repeat(8, axis=0)))


@pytest.mark.parametrize(("size", "scales"), [(64, 3), (128, 4), (256, 5)])
def test_ms_ssim_scales_fit_the_filter(size, scales):
    assert ms_ssim_scales(size) == scales == math.floor(math.log2(size / 11)) + 1
    factors = ms_ssim_power_factors(scales)
    assert sum(factors) == pytest.approx(1.0)
    np.testing.assert_allclose(np.array(factors) * sum(MS_SSIM_POWER_FACTORS[:scales]), MS_SSIM_POWER_FACTORS[:scales])


def test_ms_ssim_of_identical_pairs_is_one_and_runs_at_64(real):
    assert ms_ssim(real[:16], real[:16]) == pytest.approx(1.0, abs=1e-5)
    assert ms_ssim(real[:16, ..., None], real[16:32, ..., None]) < 0.9
    with pytest.raises(ValueError):
        ms_ssim_scales(8)


def test_ms_ssim_diversity_of_copies_is_one_of_noise_low(real):
    copies = ms_ssim_diversity(np.repeat(real[:1], 8, axis=0), pairs=32, seed=0)
    assert copies.mean == pytest.approx(1.0, abs=1e-5) and (copies.scales, copies.pairs) == (3, 32)
    noise = np.random.default_rng(3).uniform(-1, 1, (32, 64, 64)).astype(np.float32)
    assert ms_ssim_diversity(noise, pairs=64, seed=0).mean < 0.1
    diverse = ms_ssim_diversity(real, pairs=64, seed=0).mean
    assert 0.1 < diverse < 0.9 and diverse == ms_ssim_diversity(real, pairs=64, seed=0).mean


def test_quality_metrics_are_json_with_fixed_counts(real, same_kind):
    figures = quality_metrics(real, same_kind, seed=0, sample_count=64)
    assert json.loads(json.dumps(figures)) == figures
    assert set(figures) == {
        "swd_mean",
        "swd_levels",
        "ms_ssim_synthetic",
        "ms_ssim_real",
        "scales",
        "pairs",
        "sample_count",
    }
    assert list(figures["swd_levels"]) == ["64", "32", "16"]
    assert (figures["scales"], figures["sample_count"]) == (3, 64)
    assert quality_metrics(real[:64], same_kind[:64], seed=0, sample_count=64) == figures  # the first 64 of each
    with pytest.raises(ValueError, match="need 64 images"):
        quality_metrics(real[:10], same_kind, seed=0, sample_count=64)
