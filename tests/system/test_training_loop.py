"""The training loop: checkpoints, samples and the loss plot, resume, cooperative stop, progress, export."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from generator.ml.dcgan import TrainingConfig
from generator.ml.training import TrainingProgress, export_generator, generate, load_generator, train
from tests.support import REPO

# Keras 3 converts its variables with np.array(x, copy=False), which NumPy 2 warns about; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

BATCH = 8
STEPS_PER_EPOCH = 4
METRICS_SAMPLE = 16  # real and synthetic images per quality measurement (a real run takes 512)


def config(steps: int | None, **overrides) -> TrainingConfig:
    values = {"size": 64, "batch_size": BATCH, "steps": steps, "mixed_precision": "off", "metrics_every": "off"}
    return TrainingConfig(**{**values, **overrides})


def discs(count: int = 24, size: int = 64) -> np.ndarray:
    """Bright discs of varying radius on a dark background: a stand-in for axial slices, in [−1, 1]."""
    radii = np.linspace(0.4, 0.8, count)[:, None, None]
    coordinates = np.linspace(-1, 1, size)
    distance = np.hypot(*np.meshgrid(coordinates, coordinates))
    return np.where(distance[None] < radii, 0.6, -1.0).astype(np.float32)[..., None]


@pytest.fixture(scope="module")
def dataset() -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices(discs()).batch(BATCH)


def checkpoint_steps(checkpoint_dir) -> list[int]:
    return sorted(int(path.name.split("-")[1].split(".")[0]) for path in checkpoint_dir.glob("ckpt-*.index"))


def test_a_run_writes_checkpoint_samples_and_loss_plot_then_resumes(tmp_path, dataset):
    checkpoint_dir = tmp_path / "run"
    reports: list[TrainingProgress] = []
    measured: list[list[dict]] = []
    result = train(
        config(6, metrics_every="epoch"),
        dataset,
        steps_per_epoch=STEPS_PER_EPOCH,
        checkpoint_dir=checkpoint_dir,
        on_progress=reports.append,
        progress_every_s=0,  # a report after every step
        on_metrics=measured.append,
        metrics_sample_count=METRICS_SAMPLE,
    )
    assert (result.steps_done, result.total_steps, result.stopped) == (6, 6, False)
    assert result.checkpoint_path.name == "ckpt-6"
    assert checkpoint_steps(checkpoint_dir) == [4, 6]  # end of epoch 1, and the end
    samples = checkpoint_dir / "samples"
    assert sorted(path.name for path in samples.glob("samples-*.png")) == [
        "samples-epoch-0001.png",
        "samples-epoch-0002.png",
    ]
    assert result.samples_path == samples / "samples-epoch-0002.png"
    with Image.open(result.samples_path) as grid:
        assert grid.size == (8 * 64, 8 * 64) and grid.mode == "L"
    with Image.open(result.loss_plot_path) as plot:
        assert result.loss_plot_path.name == "loss.png" and plot.format == "PNG"
    assert np.isfinite([result.d_loss, result.g_loss]).all()

    assert [report.step for report in reports] == [1, 2, 3, 4, 5, 6, 6]  # every step, then the end
    assert [report.epoch for report in reports[:6]] == [1, 1, 1, 1, 2, 2]
    for report in reports:
        assert report.total_steps == 6
        assert np.isfinite([report.d_loss, report.g_loss]).all() and report.d_loss > 0 and report.g_loss > 0
        assert report.images_per_s > 0 and report.eta_s >= 0
    assert reports[-1].eta_s == 0

    # Quality metrics at the end of epoch 1 and of the run, each point handed over with those before it.
    assert [[point["step"] for point in points] for points in measured] == [[4], [4, 6]]
    assert result.metrics == measured[-1] == json.loads((checkpoint_dir / "metrics.json").read_text())
    for point, epoch in zip(result.metrics, (1, 2), strict=True):
        assert point["epoch"] == epoch and (point["scales"], point["sample_count"]) == (3, METRICS_SAMPLE)
        assert list(point["swd_levels"]) == ["64", "32", "16"] and point["swd_mean"] > 0
        assert 0 < point["ms_ssim_synthetic"] <= 1 and 0 < point["ms_ssim_real"] <= 1

    recorded = json.loads((checkpoint_dir / "config.json").read_text())
    assert TrainingConfig.from_dict(recorded["config"]) == config(6, metrics_every="epoch")
    fixed_z = np.load(checkpoint_dir / "fixed_z.npy")

    # A larger budget resumes at step 6 and runs the 3 remaining steps only.
    reports.clear()
    resumed = train(
        config(9, metrics_every="epoch"),
        dataset,
        steps_per_epoch=STEPS_PER_EPOCH,
        checkpoint_dir=checkpoint_dir,
        on_progress=reports.append,
        progress_every_s=0,
        metrics_sample_count=METRICS_SAMPLE,
    )
    assert resumed.steps_done == 9 and not resumed.stopped
    assert [report.step for report in reports] == [7, 8, 9, 9]
    assert checkpoint_steps(checkpoint_dir)[-1] == 9
    assert np.array_equal(np.load(checkpoint_dir / "fixed_z.npy"), fixed_z)
    history = json.loads((checkpoint_dir / "history.json").read_text())
    assert history["step"] == list(range(1, 10))
    assert resumed.samples_path.name == "samples-epoch-0003.png"
    assert [point["step"] for point in resumed.metrics] == [4, 6, 8, 9]
    assert resumed.metrics[:2] == result.metrics
    # The resumed run measures against the same real images: the first of its stream, as before.
    assert len({point["ms_ssim_real"] for point in resumed.metrics}) == 1

    # The same budget again: nothing left to do, nothing trained, nothing measured again.
    again = train(
        config(9, metrics_every="end"),
        dataset,
        steps_per_epoch=STEPS_PER_EPOCH,
        checkpoint_dir=checkpoint_dir,
        metrics_sample_count=METRICS_SAMPLE,
    )
    assert again.steps_done == 9 and again.checkpoint_path.name == "ckpt-9"
    assert json.loads((checkpoint_dir / "history.json").read_text()) == history
    assert again.metrics == resumed.metrics

    with pytest.raises(ValueError, match="label_smoothing"):
        train(config(12, label_smoothing=0.1), dataset, steps_per_epoch=STEPS_PER_EPOCH, checkpoint_dir=checkpoint_dir)


def test_should_stop_saves_and_returns_stopped_or_propagates_its_exception(tmp_path, dataset):
    checks = []

    def stop_after_three_steps() -> bool:
        checks.append(True)
        return len(checks) > 3  # asked before each step: steps 1–3 run, the 4th does not

    checkpoint_dir = tmp_path / "run"
    result = train(
        config(50, label_smoothing=0.1, generator_steps_per_discriminator_step=2),
        dataset,
        steps_per_epoch=100,
        checkpoint_dir=checkpoint_dir,
        should_stop=stop_after_three_steps,
    )
    assert result.stopped and result.steps_done == 3 and result.total_steps == 50
    assert result.checkpoint_path.name == "ckpt-3" and checkpoint_steps(checkpoint_dir) == [3]

    class LeaseLost(Exception):
        pass

    def lease_lost() -> bool:
        raise LeaseLost

    with pytest.raises(LeaseLost):
        train(
            config(50, label_smoothing=0.1, generator_steps_per_discriminator_step=2),
            dataset,
            steps_per_epoch=100,
            checkpoint_dir=checkpoint_dir,
            should_stop=lease_lost,
        )
    assert checkpoint_steps(checkpoint_dir) == [3]

    # Stopped again before its first step: still stopped at 3, and any report it makes is finite.
    reports: list[TrainingProgress] = []
    again = train(
        config(50, label_smoothing=0.1, generator_steps_per_discriminator_step=2),
        dataset,
        steps_per_epoch=100,
        checkpoint_dir=checkpoint_dir,
        should_stop=lambda: True,
        on_progress=reports.append,
    )
    assert again.stopped and again.steps_done == 3
    assert all(np.isfinite([report.images_per_s, report.eta_s]).all() for report in reports)


def test_time_based_checkpoints_keep_the_latest_three(tmp_path, dataset):
    checkpoint_dir = tmp_path / "run"
    train(config(5), dataset, steps_per_epoch=100, checkpoint_dir=checkpoint_dir, checkpoint_every_s=0)
    assert checkpoint_steps(checkpoint_dir) == [3, 4, 5]


def test_export_load_generate_round_trip(tmp_path, dataset):
    checkpoint_dir = tmp_path / "run"
    train(config(2, mixed_precision="on"), dataset, steps_per_epoch=STEPS_PER_EPOCH, checkpoint_dir=checkpoint_dir)
    path = export_generator(checkpoint_dir, tmp_path / "generator.keras")
    generator = load_generator(path)
    first, second = generate(generator, 5, seed=3), generate(generator, 5, seed=3)
    assert first.shape == (5, 64, 64) and first.dtype == np.float32
    assert np.array_equal(first, second)
    assert first.min() >= -1.0 and first.max() <= 1.0
    assert not np.array_equal(first, generate(generator, 5, seed=4))
    # An image depends on its z alone (up to the kernels' rounding, which varies with the batch size).
    np.testing.assert_allclose(generate(generator, 2, seed=3), first[:2], atol=1e-5)

    # A model saved as it is (here bf16) still generates float32.
    from generator.ml.dcgan import build_generator

    bf16_generator = build_generator(config(1, mixed_precision="on"))
    reloaded = load_generator(export_generator(bf16_generator, tmp_path / "bf16.keras"))
    assert reloaded.get_layer("deconv1").compute_dtype == "bfloat16"
    images = generate(reloaded, 2, seed=0)
    assert images.dtype == np.float32 and np.array_equal(images, generate(bf16_generator, 2, seed=0))

    with pytest.raises(FileNotFoundError):
        export_generator(tmp_path / "empty", tmp_path / "nothing.keras")


MIRRORED_RUN = """
import sys
import numpy as np
import tensorflow as tf

# Two logical CPUs stand in for two GPUs: the same MirroredStrategy code path as a multi-GPU worker.
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from generator.ml import hardware, metrics
from generator.ml.dcgan import TrainingConfig
from generator.ml.training import train

metrics.SAMPLE_COUNT = 16  # the real sample is gathered from both replicas' batches

hardware.distribution_strategy = lambda: tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
images = np.random.default_rng(0).uniform(-1, 1, (16, 64, 64, 1)).astype(np.float32)
dataset = tf.data.Dataset.from_tensor_slices(images).batch(8)
for steps in (3, 5):
    config = TrainingConfig(size=64, batch_size=8, steps=steps, mixed_precision=sys.argv[2])
    result = train(config, dataset, steps_per_epoch=2, checkpoint_dir=sys.argv[1])
    print("steps_done", result.steps_done, np.isfinite([result.d_loss, result.g_loss]).all(), len(result.metrics))
"""


@pytest.mark.parametrize("mixed_precision", ["off", "on"])
def test_two_replicas_train_and_resume_through_the_same_loop(tmp_path, mixed_precision):
    repo = REPO
    completed = subprocess.run(
        [sys.executable, "-c", MIRRORED_RUN, str(tmp_path / "run"), mixed_precision],
        cwd=repo,
        capture_output=True,
        encoding="utf-8",
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.split("\n")[:2] == ["steps_done 3 True 1", "steps_done 5 True 2"]  # metrics at each end
    assert checkpoint_steps(tmp_path / "run")[-1] == 5


def test_a_budget_in_minutes_stops_within_one_step_and_a_resume_gets_the_time_left(tmp_path, dataset):
    checkpoint_dir = tmp_path / "run"
    budget_s = 3.0
    reports: list[TrainingProgress] = []
    result = train(
        config(None, minutes=budget_s / 60),
        dataset,
        steps_per_epoch=1000,
        checkpoint_dir=checkpoint_dir,
        on_progress=reports.append,
        progress_every_s=0,
    )
    assert not result.stopped and result.total_steps is None and result.steps_done >= 1
    in_loop, final = reports[:-1], reports[-1]
    assert [report.step for report in in_loop] == list(range(1, result.steps_done + 1))
    # The check before the last step still found time left, and the run then stopped: within one step.
    assert all(report.trained_s < budget_s for report in in_loop[:-1])
    assert result.trained_s >= budget_s and final.fraction == 1 and final.seconds_left == 0 and final.eta_s == 0
    assert all(report.total_steps is None and report.seconds_left is not None for report in reports)

    # Stopped early, then resumed: the clock goes on from the checkpoint instead of starting again.
    stopped_dir = tmp_path / "stopped"
    asked = []
    first = train(
        config(None, minutes=budget_s / 60),
        dataset,
        steps_per_epoch=1000,
        checkpoint_dir=stopped_dir,
        should_stop=lambda: len(asked) > 2 or asked.append(True),  # steps 1–3, then stop
    )
    assert first.stopped and first.steps_done == 3 and first.trained_s > 0
    extended_s = first.trained_s + 2.0  # two seconds left for the resumed run, on any machine
    reports.clear()
    resumed = train(
        config(None, minutes=extended_s / 60),
        dataset,
        steps_per_epoch=1000,
        checkpoint_dir=stopped_dir,
        on_progress=reports.append,
        progress_every_s=0,
    )
    assert resumed.steps_done > 3 and not resumed.stopped
    assert reports[0].step == 4 and reports[0].trained_s > first.trained_s
    assert resumed.trained_s >= extended_s
    # Not a fresh budget: the earlier calls' time plus no more than this call's wall time (exact on any machine).
    assert first.trained_s < resumed.trained_s <= first.trained_s + resumed.seconds

    # Nothing left: no step.
    again = train(config(None, minutes=extended_s / 60), dataset, steps_per_epoch=1000, checkpoint_dir=stopped_dir)
    assert again.steps_done == resumed.steps_done and again.trained_s == pytest.approx(resumed.trained_s)


def test_a_checkpoint_saved_before_training_time_was_kept_resumes(tmp_path, dataset):
    from generator.ml.training.gan import GAN

    checkpoint_dir = tmp_path / "run"
    train(config(2), dataset, steps_per_epoch=100, checkpoint_dir=checkpoint_dir)
    old = GAN(config(2))  # as an earlier release saved it: no trained_seconds
    old.checkpoint(with_training_time=False).restore(tf.train.latest_checkpoint(str(checkpoint_dir)))
    old.step.assign(5)
    for path in checkpoint_dir.glob("ckpt-*"):
        path.unlink()
    tf.train.CheckpointManager(old.checkpoint(with_training_time=False), str(checkpoint_dir), 3).save(
        checkpoint_number=5
    )
    resumed = train(config(7), dataset, steps_per_epoch=100, checkpoint_dir=checkpoint_dir)
    assert resumed.steps_done == 7 and 0 < resumed.trained_s <= resumed.seconds  # its clock started at 0


ONEDNN_CHECK = (
    "import generator.ml, tensorflow\n"
    "from tensorflow.python.util import _pywrap_util_port\n"
    "print(_pywrap_util_port.IsMklEnabled())"
)


def test_onednn_is_on_for_every_cpu_unless_turned_off():
    """TensorFlow keeps oneDNN off on AVX2-only CPUs; generator.ml turns it on (half the speed otherwise)."""
    import os

    environment = {name: value for name, value in os.environ.items() if name != "TF_ENABLE_ONEDNN_OPTS"}
    for setting, expected in ((None, "True"), ("0", "False")):
        completed = subprocess.run(
            [sys.executable, "-c", ONEDNN_CHECK],
            cwd=REPO,
            env={**environment, **({"TF_ENABLE_ONEDNN_OPTS": setting} if setting else {})},
            capture_output=True,
            encoding="utf-8",
            timeout=120,
        )
        assert completed.stdout.strip() == expected, completed.stderr[-2000:]


def test_the_modern_preset_trains_checkpoints_resumes_and_exports_the_average(tmp_path, dataset):
    from generator.ml.dcgan import preset_config
    from generator.ml.training.gan import GAN

    modern = {
        name: getattr(preset_config("modern-64"), name)
        for name in ("network_width", "discriminator_minibatch_stddev", "generator_ema_decay", "mode_seeking_weight")
    }
    assert modern == {
        "network_width": 0.5,
        "discriminator_minibatch_stddev": True,
        "generator_ema_decay": 0.999,
        "mode_seeking_weight": 1.0,
    }
    # The preset's stabilisers and the options it leaves out (DiffAugment, two rates) in one run.
    stabilised = {
        **modern,
        "generator_ema_decay": 0.9,
        "diff_augment": "translation,cutout",
        "learning_rate": 1e-4,
        "discriminator_learning_rate": 4e-4,
    }
    checkpoint_dir = tmp_path / "run"
    first = train(config(3, **stabilised), dataset, steps_per_epoch=100, checkpoint_dir=checkpoint_dir)
    resumed = train(config(5, **stabilised), dataset, steps_per_epoch=100, checkpoint_dir=checkpoint_dir)
    assert (first.steps_done, resumed.steps_done) == (3, 5) and np.isfinite([resumed.d_loss, resumed.g_loss]).all()

    gan = GAN(config(5, **stabilised))
    gan.checkpoint().restore(tf.train.latest_checkpoint(str(checkpoint_dir))).assert_existing_objects_matched()
    assert float(gan.discriminator_optimizer.learning_rate) == pytest.approx(4e-4)
    assert float(gan.generator_optimizer.learning_rate) == pytest.approx(1e-4)
    assert gan.generator.get_layer("deconv1").filters == 64  # half the paper's 128
    assert gan.discriminator.get_layer("flatten").input.shape[-1] == 128 + 1  # half of 256, and the spread
    average, raw = gan.ema_generator.get_weights(), gan.generator.get_weights()
    assert not all(np.array_equal(a, b) for a, b in zip(average, raw, strict=True))  # an average, not a copy
    exported = load_generator(export_generator(checkpoint_dir, tmp_path / "g.keras"))
    assert all(np.array_equal(a, b) for a, b in zip(exported.get_weights(), average, strict=True))


def test_diff_augment_shifts_and_cuts_out_with_black_and_passes_gradients():
    from generator.ml.training.augment import cutout, diff_augment, translation

    noise = tf.random.Generator.from_seed(0)
    images = tf.constant(discs(8), tf.float32)
    shifted = translation(images, noise).numpy()
    assert shifted.shape == tuple(images.shape) and set(np.unique(shifted)) <= set(np.unique(images.numpy()))
    assert not np.array_equal(shifted, images.numpy())  # moved, not blurred: the same two values
    flat = tf.fill([64, 64, 64, 1], 0.5)  # some squares fall wholly inside
    cut = cutout(flat, noise).numpy()
    black = (cut == -1.0).sum(axis=(1, 2, 3))
    assert ((black > 0) & (black <= 32 * 32)).all() and black.max() == 32 * 32
    with tf.GradientTape() as tape:
        tape.watch(images)
        augmented = diff_augment(images, "translation,cutout", noise)
        total = tf.reduce_sum(augmented)
    assert float(tf.reduce_sum(tf.abs(tape.gradient(total, images)))) > 0
