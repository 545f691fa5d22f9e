"""What our train() loop costs against a bare tf.function loop (float32 and bf16), where a step's time
goes on this CPU, how closely a budget in minutes holds, and what bf16 does to samples.

It first prints the CPU model and its vector extensions (AVX2, AVX-512F, AVX512-BF16, AMX) and the
bare loop's images/s, so figures from two machines can be read side by side.

Throughput: images/s of ``train()`` on slices streamed from one volume (progress reports every 2 s,
checkpoints at the jobs' default rate; and again with a checkpoint, sample grid and loss plot every
5 s, 60x that rate, an upper bound on their cost) against a bare
``tf.function`` float32 step of the same networks on random tensors, at 64² and 128²; rounds
alternate so the other tenants of a shared machine slow every variant alike, and each variant's
best round counts. Then the time one paper-256 epoch (one volume's 48,510 slices) would take here,
and the quality check: the same data, seed and steps in float32 and in bf16, each judged by how
close its samples come to real slices (intensity histograms, mean images).

Where a step goes (64², float32): the discriminator's update and the generator's, timed apart;
the slice stream alone; the bare loop again in fresh processes with oneDNN held to AVX2
(``ONEDNN_MAX_CPU_ISA=AVX2``: the AVX2-only kind's code path on this CPU), with one inter-op
thread, and with oneDNN off, each against the default in the same run.

The volume is the MNI152 template that ships in the nilearn wheel (the demo data), or a
synthetic head phantom where nilearn is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generator.ml.dcgan import TrainingConfig, preset_config
from generator.ml.streaming import SliceSource, slice_dataset, steps_per_epoch

THROUGHPUT_STEPS = {64: 50, 128: 20}
ROUNDS = 2
JOB_CHECKPOINT_EVERY_S = 300.0  # TRAINING_CHECKPOINT_EVERY_S's default: what jobs run with
FREQUENT_CHECKPOINT_EVERY_S = 5.0  # 60x as often: an upper bound on what checkpoints, grids and plots cost
PAPER_STEPS_TIMED = 4
DEMO_PRESET_STEPS_TIMED = 150  # enough progress reports (every 2 s) for a rate on the slow kind too
# Steps from which modern-64 was judged diverse on the demo's data, 3 seeds (benchmarks/README.md).
DEMO_PRESET_DIVERSE_FROM_STEPS = 300
BREAKDOWN_STEPS = 20
MINUTES_BUDGET = 0.25
# Fresh processes for settings TensorFlow reads once, at import.
# "oneDNN off" is TensorFlow's own default on an AVX2-only CPU (no AVX512-VNNI, AVX512-BF16, AVX-VNNI or
# AMX): the slow kind before generator.ml turned oneDNN on; "oneDNN held to AVX2" is that kind after.
BARE_VARIANTS = {
    "default": {},
    "oneDNN held to AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "oneDNN off": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "one inter-op thread": {"TF_NUM_INTEROP_THREADS": "1"},
}
QUALITY_STEPS = 300
QUALITY_SAMPLES = 512
HISTOGRAM_BINS = 64


def demo_volume() -> SliceSource:
    """One normalised volume to stream slices from."""
    from generator.ml.slicing import normalise_intensity

    try:
        from nilearn import datasets
    except ImportError:
        return _phantom()
    template = datasets.load_mni152_template(resolution=1)
    volume = normalise_intensity(np.asarray(template.get_fdata(dtype=np.float32)))
    return SliceSource(volume, np.linalg.inv(template.affine), None, "mni152")


def _phantom() -> SliceSource:
    # An ellipsoid head: bright scalp ring, grey brain, dark ventricles, 1 mm voxels centred on the origin.
    shape = (180, 216, 180)
    x, y, z = (np.arange(n) - n / 2 for n in shape)
    radius = np.sqrt((x[:, None, None] / 70) ** 2 + (y[None, :, None] / 90) ** 2 + (z[None, None, :] / 70) ** 2)
    ventricles = np.sqrt((x[:, None, None] / 12) ** 2 + (y[None, :, None] / 30) ** 2 + (z[None, None, :] / 15) ** 2)
    volume = np.where(radius < 1.0, 0.2, -1.0) + np.where((radius > 0.9) & (radius < 1.0), 0.7, 0.0)
    volume = np.where(ventricles < 1.0, -0.6, volume).astype(np.float32)
    voxel_from_world = np.eye(4)
    voxel_from_world[:3, 3] = [n / 2 for n in shape]
    return SliceSource(volume, voxel_from_world, None, "phantom")


def bare_images_per_s(config: TrainingConfig, steps: int) -> float:
    """The same networks and losses in a plain float32 tf.function step on random tensors: the baseline."""
    import tensorflow as tf

    from generator.ml.dcgan import build_discriminator, build_generator, build_optimizer

    generator, discriminator = build_generator(config), build_discriminator(config)
    generator_optimizer, discriminator_optimizer = build_optimizer(config), build_optimizer(config)
    batch, z_dim = config.batch_size, config.z_dim
    real_images = tf.random.uniform([batch, config.size, config.size, 1], -1.0, 1.0)

    def cross_entropy(label: float, logits: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.fill(tf.shape(logits), label), logits))

    @tf.function
    def step() -> tuple[tf.Tensor, tf.Tensor]:
        fake_images = generator(tf.random.uniform([batch, z_dim], -1.0, 1.0), training=True)
        with tf.GradientTape() as tape:
            d_loss = cross_entropy(1.0, discriminator(real_images, training=True)) + cross_entropy(
                0.0, discriminator(fake_images, training=True)
            )
        variables = discriminator.trainable_variables
        discriminator_optimizer.apply_gradients(zip(tape.gradient(d_loss, variables), variables, strict=True))
        with tf.GradientTape() as tape:
            fake_logits = discriminator(generator(tf.random.uniform([batch, z_dim], -1.0, 1.0), training=True))
            g_loss = cross_entropy(1.0, fake_logits)
        variables = generator.trainable_variables
        generator_optimizer.apply_gradients(zip(tape.gradient(g_loss, variables), variables, strict=True))
        return d_loss, g_loss

    float(step()[0])  # traces
    started = time.perf_counter()
    for _ in range(steps - 1):
        losses = step()
    float(losses[0])
    return (steps - 1) * batch / (time.perf_counter() - started)


def update_seconds(config: TrainingConfig, steps: int) -> dict:
    """Seconds per discriminator update and per generator update, each timed alone (float32)."""
    import tensorflow as tf

    from generator.ml.training.gan import GAN

    gan = GAN(config)
    real_images = tf.random.uniform([config.batch_size, config.size, config.size, 1], -1.0, 1.0)
    discriminator_update = tf.function(lambda: gan.discriminator_update(real_images))
    generator_update = tf.function(lambda: gan.generator_update(config.batch_size))

    seconds = {}
    for name, update in (("discriminator", discriminator_update), ("generator", generator_update)):
        float(update())  # traces
        started = time.perf_counter()
        for _ in range(steps):
            loss = update()
        float(loss)
        seconds[name] = (time.perf_counter() - started) / steps
    return seconds


def stream_images_per_s(source: SliceSource, size: int, batches: int = 200) -> float:
    """The slice stream alone, as train() reads it: one drawing thread, no training."""
    iterator = iter(slice_dataset([source], matrix_size=size, batch_size=64, seed=0))
    next(iterator)  # compiles the kernel, draws the first chunk
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * 64 / (time.perf_counter() - started)


def bare_in_fresh_process(environment: dict[str, str], size: int = 64) -> float:
    completed = subprocess.run(
        [sys.executable, __file__, "--bare", str(size)],
        env={**os.environ, **environment, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        encoding="utf-8",
        check=True,
        timeout=900,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])["images_per_s"]


def breakdown(source: SliceSource, figures: dict) -> dict:
    """Where a 64² float32 step's time goes, and what the CPU's code paths and threads change."""
    config = TrainingConfig(size=64, steps=BREAKDOWN_STEPS, mixed_precision="off")
    seconds = update_seconds(config, BREAKDOWN_STEPS)
    step_s = 64 / figures["bare_float32_64_images_per_s"]
    train_step_s = 64 / figures["train_float32_64_images_per_s"]
    stream = stream_images_per_s(source, 64)
    result = {
        "discriminator_update_s": seconds["discriminator"],
        "generator_update_s": seconds["generator"],
        "bare_step_s": step_s,
        "train_step_s": train_step_s,
        "stream_64_images_per_s": stream,
        "stream_share_of_step": (64 / stream) / train_step_s,
    }
    print(
        f"64² float32 step: bare {step_s * 1000:.0f} ms = discriminator update "
        f"{seconds['discriminator'] * 1000:.0f} ms (its G forward included) + generator update "
        f"{seconds['generator'] * 1000:.0f} ms; train() "
        f"{train_step_s * 1000:.0f} ms (loop, stream, progress and checkpoints: "
        f"{(train_step_s - step_s) * 1000:+.0f} ms)"
    )
    print(f"slice stream alone: {stream:,.0f} images/s on one thread = {result['stream_share_of_step']:.1%} of a step")
    baseline = None
    for name, environment in BARE_VARIANTS.items():
        images_per_s = bare_in_fresh_process(environment)
        baseline = baseline or images_per_s
        key = name.replace(" ", "_").replace("-", "_")
        result[f"bare_64_{key}_images_per_s"] = images_per_s
        result[f"bare_64_{key}_over_default"] = images_per_s / baseline
        print(f"bare float32 64², {name:22s} {images_per_s:7.1f} img/s  {images_per_s / baseline:.2f}x the default")
    on_avx2 = result["bare_64_oneDNN_held_to_AVX2_images_per_s"] / result["bare_64_oneDNN_off_images_per_s"]
    result["avx2_kind_onednn_on_over_off"] = on_avx2
    print(f"the AVX2-only kind's code path, oneDNN on (ours) over off (TensorFlow's default there): {on_avx2:.2f}x")
    return result


def minutes_budget_overshoot(source: SliceSource, workdir: Path) -> dict:
    """How far past its limit a budget in minutes stops, in steps (target: at most one)."""
    from generator.ml.training import train

    config = preset_config("quick-64", minutes=MINUTES_BUDGET, mixed_precision="off", metrics_every="off")
    dataset = slice_dataset([source], matrix_size=64, batch_size=config.batch_size, seed=config.seed)
    reports = []
    result = train(
        config,
        dataset,
        steps_per_epoch=steps_per_epoch([source]),
        checkpoint_dir=Path(tempfile.mkdtemp(dir=workdir)),
        on_progress=reports.append,
        progress_every_s=0,
    )
    step_s = (reports[-2].trained_s - reports[0].trained_s) / max(1, reports[-2].step - reports[0].step)
    overshoot_s = result.trained_s - MINUTES_BUDGET * 60
    print(
        f"budget of {MINUTES_BUDGET * 60:.0f} s: stopped after {result.steps_done} steps at {result.trained_s:.1f} s "
        f"of training, {overshoot_s:.2f} s past the limit = {overshoot_s / step_s:.2f} steps (target ≤ 1)"
    )
    return {"minutes_budget_steps": result.steps_done, "minutes_budget_overshoot_steps": overshoot_s / step_s}


def train_images_per_s(
    config: TrainingConfig, source: SliceSource, workdir: Path, checkpoint_every_s: float = JOB_CHECKPOINT_EVERY_S
) -> float:
    """Images/s of train() as it reports them: from its first step's end (after tracing) to its last in-loop report."""
    from generator.ml.training import TrainingProgress, train

    reports: list[TrainingProgress] = []
    dataset = slice_dataset([source], matrix_size=config.size, batch_size=config.batch_size, seed=config.seed)
    train(
        config,
        dataset,
        steps_per_epoch=steps_per_epoch([source], batch_size=config.batch_size),
        checkpoint_dir=Path(tempfile.mkdtemp(dir=workdir)),
        on_progress=reports.append,
        checkpoint_every_s=checkpoint_every_s,
    )
    in_loop = reports[:-1]  # the last report comes after the final checkpoint, outside the loop
    if not in_loop or in_loop[-1].step < 3:
        raise RuntimeError(f"too few steps for a rate: reports at steps {[report.step for report in reports]}")
    return in_loop[-1].images_per_s


def throughput(size: int, source: SliceSource, workdir: Path) -> dict:
    steps = THROUGHPUT_STEPS[size]
    float32_config = TrainingConfig(size=size, steps=steps, mixed_precision="off")
    bf16_config = TrainingConfig(size=size, steps=steps, mixed_precision="on")
    best = {"bare_float32": 0.0, "train_float32": 0.0, "train_float32_frequent": 0.0, "train_bf16": 0.0}
    for _ in range(ROUNDS):
        best["bare_float32"] = max(best["bare_float32"], bare_images_per_s(float32_config, steps))
        best["train_float32"] = max(best["train_float32"], train_images_per_s(float32_config, source, workdir))
        frequent = train_images_per_s(float32_config, source, workdir, FREQUENT_CHECKPOINT_EVERY_S)
        best["train_float32_frequent"] = max(best["train_float32_frequent"], frequent)
        best["train_bf16"] = max(best["train_bf16"], train_images_per_s(bf16_config, source, workdir))
    figures = {
        **{f"{name}_{size}_images_per_s": value for name, value in best.items()},
        f"float32_over_bare_{size}": best["train_float32"] / best["bare_float32"],
        f"float32_frequent_over_bare_{size}": best["train_float32_frequent"] / best["bare_float32"],
        f"bf16_over_bare_{size}": best["train_bf16"] / best["bare_float32"],
    }
    print(f"{size}²: bare float32 loop {best['bare_float32']:7.1f} img/s (baseline)")
    print(
        f"{size}²: train() float32   {best['train_float32']:7.1f} img/s  "
        f"{figures[f'float32_over_bare_{size}']:.2f}x  (target ≥ 0.95x)"
    )
    print(
        f"{size}²: train() float32, a checkpoint every {FREQUENT_CHECKPOINT_EVERY_S:.0f} s "
        f"{best['train_float32_frequent']:7.1f} img/s  {figures[f'float32_frequent_over_bare_{size}']:.2f}x  (reported)"
    )
    print(
        f"{size}²: train() bf16      {best['train_bf16']:7.1f} img/s  "
        f"{figures[f'bf16_over_bare_{size}']:.2f}x  (target ≥ 1.5x)"
    )
    return figures


def precision_name(config: TrainingConfig) -> str:
    """The precision a config trains in on this machine ("auto" follows the hardware)."""
    from generator.ml.hardware import mixed_precision_enabled

    return "bf16" if mixed_precision_enabled(config.mixed_precision) else "float32"


def paper_epoch_estimate(source: SliceSource, workdir: Path) -> dict:
    """One paper-256 epoch over one volume's grid, extrapolated from a few timed train() steps."""
    config = preset_config("paper-256", steps=PAPER_STEPS_TIMED)
    images_per_s = train_images_per_s(config, source, workdir)
    slices = steps_per_epoch([source], batch_size=1)
    epoch_s = slices / images_per_s
    precision = precision_name(config)
    print(
        f"paper-256 ({precision}): {images_per_s:.1f} img/s → one epoch of {slices:,} slices ≈ {epoch_s / 3600:.1f} h, "
        f"35 epochs ≈ {35 * epoch_s / 86400:.1f} days"
    )
    return {"paper_256_images_per_s": images_per_s, "paper_256_epoch_s": epoch_s}


def quick_64_estimate(figures: dict) -> dict:
    """How many steps quick-64's minutes buy here, in the precision "auto" picks."""
    config = preset_config("quick-64")
    precision = precision_name(config)
    steps = config.minutes * 60 * figures[f"train_{precision}_64_images_per_s"] / config.batch_size
    print(f"quick-64: {config.minutes:g} minutes ≈ {steps:,.0f} steps at batch 64 in {precision} here")
    return {"quick_64_minutes": config.minutes, "quick_64_steps_here": steps}


def histogram_distance(images: np.ndarray, reference: np.ndarray) -> float:
    """L1 distance between the two sets' pixel-intensity histograms over [−1, 1] (0 same, 2 disjoint)."""
    edges = np.linspace(-1.0, 1.0, HISTOGRAM_BINS + 1)
    first = np.histogram(np.clip(images, -1, 1), edges)[0] / images.size
    second = np.histogram(np.clip(reference, -1, 1), edges)[0] / reference.size
    return float(np.abs(first - second).sum())


def mean_image_distance(images: np.ndarray, reference: np.ndarray) -> float:
    """Root-mean-square difference between the two sets' mean images."""
    return float(np.sqrt(np.mean((images.mean(axis=0) - reference.mean(axis=0)) ** 2)))


def quality(source: SliceSource, workdir: Path) -> dict:
    from generator.ml.training import export_generator, generate, load_generator, train

    real_batches = slice_dataset([source], matrix_size=64, batch_size=QUALITY_SAMPLES, seed=123)
    real = next(iter(real_batches)).numpy()[..., 0]
    figures = {}
    for precision in ("off", "on"):
        config = preset_config("quick-64", steps=QUALITY_STEPS, mixed_precision=precision, seed=7)
        checkpoint_dir = Path(tempfile.mkdtemp(dir=workdir))
        dataset = slice_dataset([source], matrix_size=64, batch_size=config.batch_size, seed=config.seed)
        result = train(config, dataset, steps_per_epoch=steps_per_epoch([source]), checkpoint_dir=checkpoint_dir)
        images = generate(load_generator(export_generator(checkpoint_dir, checkpoint_dir / "g.keras")), len(real), 1)
        name = "float32" if precision == "off" else "bf16"
        figures[f"{name}_histogram_distance"] = histogram_distance(images, real)
        figures[f"{name}_mean_image_distance"] = mean_image_distance(images, real)
        print(
            f"quality {name:7s} after {QUALITY_STEPS} steps ({result.seconds:.0f} s): histogram L1 "
            f"{figures[f'{name}_histogram_distance']:.3f}, mean-image RMS {figures[f'{name}_mean_image_distance']:.3f}"
        )
    for metric in ("histogram_distance", "mean_image_distance"):
        ratio = figures[f"bf16_{metric}"] / figures[f"float32_{metric}"]
        figures[f"bf16_over_float32_{metric}"] = ratio
        verdict = "ok" if ratio <= 1.10 else "WORSE than float32 by more than 10 %"
        print(f"quality bf16/float32 {metric}: {ratio:.2f}  (target ≤ 1.10: {verdict})")
    return figures


def demo_preset_estimate(source: SliceSource, workdir: Path) -> dict:
    """How many steps the demo's modern-64 minutes buy here (train() in the precision "auto" picks),
    against the steps from which it was judged diverse: the question the slow kind asks."""
    config = preset_config("modern-64", steps=DEMO_PRESET_STEPS_TIMED, metrics_every="off")
    precision = precision_name(config)
    images_per_s = train_images_per_s(config, source, workdir)
    minutes = preset_config("modern-64").minutes
    steps = minutes * 60 * images_per_s / config.batch_size
    print(
        f"modern-64 (the demo's, {precision}): {images_per_s / config.batch_size:.1f} steps/s, so {minutes:g} minutes "
        f"≈ {steps:,.0f} steps here; judged diverse from about {DEMO_PRESET_DIVERSE_FROM_STEPS} "
        f"({steps / DEMO_PRESET_DIVERSE_FROM_STEPS:.1f}x that)"
    )
    return {"modern_64_steps_here": steps, "modern_64_over_diverse_from": steps / DEMO_PRESET_DIVERSE_FROM_STEPS}


def main() -> dict:
    import tensorflow as tf

    from generator.ml.hardware import cpu_summary

    source = demo_volume()
    print(f"CPU: {cpu_summary()}, {os.cpu_count()} cores; TensorFlow {tf.__version__}")
    print(f"volume: {source.name}, {steps_per_epoch([source], batch_size=1):,} grid slices")
    figures: dict = {}
    with tempfile.TemporaryDirectory() as workdir:
        for size in THROUGHPUT_STEPS:
            figures.update(throughput(size, source, Path(workdir)))
        figures.update(breakdown(source, figures))
        figures.update(minutes_budget_overshoot(source, Path(workdir)))
        figures.update(quick_64_estimate(figures))
        figures.update(demo_preset_estimate(source, Path(workdir)))
        figures.update(paper_epoch_estimate(source, Path(workdir)))
        figures.update(quality(source, Path(workdir)))
    return figures


if __name__ == "__main__":
    if sys.argv[1:2] == ["--bare"]:  # one bare measurement in a fresh process (see breakdown)
        size = int(sys.argv[2])
        bare_images_per_s(TrainingConfig(size=size, steps=2, mixed_precision="off"), THROUGHPUT_STEPS[size])  # warm
        rate = bare_images_per_s(TrainingConfig(size=size, steps=2, mixed_precision="off"), THROUGHPUT_STEPS[size])
        print(json.dumps({"images_per_s": rate}))
    else:
        main()
