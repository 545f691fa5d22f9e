"""The one DCGAN training loop: the Celery task, the train_dcgan command and the tests all call ``train``.

Everything a run needs to resume lives in its checkpoint folder:

    ckpt-<step>.*, checkpoint   generator, discriminator, both optimizers, step counter, noise stream
    config.json                 the run's TrainingConfig (and steps per epoch); a resume must match it
    fixed_z.npy                 the z behind every sample grid, so grids stay comparable across resumes
    history.json                mean losses per block of steps, written with each checkpoint
    metrics.json                the quality metrics (generator.ml.metrics) per measured step

Resuming restores all of it and runs the remaining steps only; a finished run does nothing more.
The data order is not part of the state: a resumed run iterates its dataset afresh, since a GAN's
progress does not depend on seeing exactly the rest of an interrupted epoch.

Quality metrics (``config.metrics_every``) compare the first ``metrics.SAMPLE_COUNT`` real images of
the run's own stream with as many images generated from a z fixed by the seed. A resumed run builds
its stream afresh, and a new slice stream with the same seed replays the same epochs, so it measures
against the same real set: the points of one run compare. They are not kept in the checkpoint
(128 MB at 256²).

TensorFlow is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from generator.ml import metrics as quality
from generator.ml.dcgan import TrainingConfig

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

PROGRESS_EVERY_S = 2.0
CHECKPOINTS_KEPT = 3
HISTORY_POINTS = 1000  # the loss curve keeps about this many points, whatever the run's length
CONFIG_NAME, FIXED_Z_NAME, HISTORY_NAME, LOSS_PLOT_NAME = "config.json", "fixed_z.npy", "history.json", "loss.png"
METRICS_NAME = "metrics.json"
# A resumed run may extend its budget and measure more or less often; nothing else may change.
RESUMABLE_FIELDS = ("epochs", "steps", "metrics_every")


@dataclass(frozen=True)
class TrainingProgress:
    """One progress report; ``epoch`` is the 1-based epoch the latest step belongs to. All finite."""

    epoch: int
    step: int
    total_steps: int
    d_loss: float
    g_loss: float
    images_per_s: float
    eta_s: float


@dataclass(frozen=True)
class TrainingResult:
    steps_done: int
    total_steps: int
    stopped: bool
    d_loss: float | None
    g_loss: float | None
    seconds: float
    checkpoint_path: Path | None
    samples_path: Path | None
    loss_plot_path: Path | None
    metrics: list[dict] = field(default_factory=list)  # one point per measured step, as in metrics.json


def train(  # noqa: C901  (to be cut into named pieces: issue #21)
    config: TrainingConfig,
    dataset: tf.data.Dataset,
    *,
    steps_per_epoch: int,
    checkpoint_dir: Path,
    on_progress: Callable[[TrainingProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    sample_dir: Path | None = None,
    checkpoint_every_s: float = 300,
    on_metrics: Callable[[list[dict]], None] | None = None,
    metrics_sample_count: int | None = None,
) -> TrainingResult:
    """Train (or resume training) the DCGAN on batches [b, s, s, 1] in [−1, 1] until the budget is spent.

    The dataset is repeated: an epoch is ``steps_per_epoch`` steps, whatever the dataset's length.
    A checkpoint is saved every epoch, every ``checkpoint_every_s`` and at the end; a sample grid
    (``sample_dir``, default ``checkpoint_dir/samples``) and ``loss.png`` every epoch and at the end.
    ``should_stop`` is asked before every step: True saves a checkpoint and returns ``stopped=True``;
    an exception it raises (a lost lease) propagates without saving, since another worker may own
    the run by then.
    Quality metrics per ``config.metrics_every``, after the checkpoint of each epoch's end ("epoch")
    and of the run's end ("epoch", "end"; not when stopped), on ``metrics_sample_count`` (default
    ``metrics.SAMPLE_COUNT``) images of each kind; each new point goes to ``metrics.json`` and the
    whole list, {step, epoch, swd_mean, swd_levels, ms_ssim_synthetic, ms_ssim_real, scales, pairs,
    sample_count}, to ``on_metrics`` (a resume first hands over the points up to its checkpoint).
    """
    import keras
    import tensorflow as tf

    from generator.ml.dcgan import build_discriminator, build_generator, build_optimizer
    from generator.ml.hardware import configure_gpus, distribution_strategy

    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be positive, got {steps_per_epoch}")
    started = time.monotonic()
    checkpoint_dir = Path(checkpoint_dir)
    sample_dir = Path(sample_dir) if sample_dir is not None else checkpoint_dir / "samples"
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    sample_dir.mkdir(parents=True, exist_ok=True)
    _record_config(checkpoint_dir, config, steps_per_epoch)
    fixed_z = _fixed_z(checkpoint_dir, config)
    total_steps = config.total_steps(steps_per_epoch)

    configure_gpus()
    strategy = distribution_strategy()
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        generator, discriminator = build_generator(config), build_discriminator(config)
        generator_optimizer, discriminator_optimizer = build_optimizer(config), build_optimizer(config)
        # Built now rather than on the first step, so a restore fills their slots instead of deferring.
        generator_optimizer.build(generator.trainable_variables)
        discriminator_optimizer.build(discriminator.trainable_variables)
        step_counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        # In the checkpoint, so a resumed run continues the noise stream rather than replaying it.
        noise = tf.random.Generator.from_seed(config.seed)
    checkpoint = tf.train.Checkpoint(
        generator=generator,
        discriminator=discriminator,
        generator_optimizer=generator_optimizer,
        discriminator_optimizer=discriminator_optimizer,
        step=step_counter,
        noise=noise,
    )
    manager = tf.train.CheckpointManager(
        checkpoint, str(checkpoint_dir), max_to_keep=CHECKPOINTS_KEPT, step_counter=step_counter
    )
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    step = int(step_counter.numpy())
    history = _load_history(checkpoint_dir, up_to_step=step)
    metrics_history = _load_metrics(checkpoint_dir, up_to_step=step)
    if step > 0 and on_metrics is not None:
        on_metrics(list(metrics_history))  # a resumed run's points, trimmed to its checkpoint
    sample_count = metrics_sample_count or quality.SAMPLE_COUNT
    real_for_metrics: list[np.ndarray] = []

    real_label = 1.0 - config.label_smoothing

    def cross_entropy(label: float, logits: tf.Tensor) -> tf.Tensor:
        # Averaged over the global batch, so summing the replicas' gradients gives the batch mean.
        per_image = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), label), logits=logits)
        return tf.nn.compute_average_loss(tf.reduce_sum(per_image, axis=-1))

    def replica_step(real_images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        batch = tf.shape(real_images)[0]
        fake_images = generator(noise.uniform([batch, config.z_dim], -1.0, 1.0), training=True)
        with tf.GradientTape() as tape:
            real_logits = discriminator(real_images, training=True)
            fake_logits = discriminator(fake_images, training=True)
            d_loss = cross_entropy(real_label, real_logits) + cross_entropy(0.0, fake_logits)
        gradients = tape.gradient(d_loss, discriminator.trainable_variables)
        discriminator_optimizer.apply_gradients(zip(gradients, discriminator.trainable_variables, strict=True))
        for _ in range(config.generator_steps_per_discriminator_step):
            with tf.GradientTape() as tape:
                fake_logits = discriminator(
                    generator(noise.uniform([batch, config.z_dim], -1.0, 1.0), training=True), training=True
                )
                g_loss = cross_entropy(1.0, fake_logits)  # non-saturating: −log D(G(z))
            gradients = tape.gradient(g_loss, generator.trainable_variables)
            generator_optimizer.apply_gradients(zip(gradients, generator.trainable_variables, strict=True))
        return d_loss, g_loss

    @tf.function(reduce_retracing=True)  # a last partial batch must not trace a second graph per shape
    def train_step(real_images: Any) -> tuple[tf.Tensor, tf.Tensor]:
        d_loss, g_loss = strategy.run(replica_step, args=(real_images,))
        step_counter.assign_add(1)
        sum_replicas = tf.distribute.ReduceOp.SUM
        return strategy.reduce(sum_replicas, d_loss, axis=None), strategy.reduce(sum_replicas, g_loss, axis=None)

    def save() -> Path:
        _flush_losses(history, pending_losses, step)
        saved = Path(manager.save(checkpoint_number=step))
        # After the checkpoint: a crash in between leaves history behind, never ahead (trimmed on resume).
        _write_json(checkpoint_dir / HISTORY_NAME, history)
        return saved

    def keep_real(batch: Any) -> None:
        if config.metrics_every != "off" and sum(map(len, real_for_metrics)) < sample_count:
            real_for_metrics.extend(images.numpy()[..., 0] for images in strategy.experimental_local_results(batch))

    def measure() -> None:
        while sum(map(len, real_for_metrics)) < sample_count:
            keep_real(next(batches))  # a run shorter than the sample reads on, without training on it
        z = np.random.default_rng([config.seed, 2]).uniform(-1.0, 1.0, (sample_count, config.z_dim))
        figures = quality.quality_metrics(
            np.concatenate(real_for_metrics),
            _generate_from_z(generator, z.astype(np.float32)),
            seed=config.seed,
            sample_count=sample_count,
        )
        metrics_history.append({"step": step, "epoch": _epoch_of(step, steps_per_epoch), **figures})
        _write_json(checkpoint_dir / METRICS_NAME, metrics_history)
        if on_metrics is not None:
            on_metrics(list(metrics_history))

    def measured_now() -> bool:
        return bool(metrics_history) and metrics_history[-1]["step"] == step

    def write_samples_and_plot() -> tuple[Path, Path]:
        samples_path = sample_dir / f"samples-epoch-{_epoch_of(step, steps_per_epoch):04d}.png"
        _save_grid(_generate_from_z(generator, fixed_z), samples_path)
        return samples_path, _save_loss_plot(history, steps_per_epoch, sample_dir / LOSS_PLOT_NAME)

    pending_losses: list[tuple[tf.Tensor, tf.Tensor]] = []
    history_every = max(1, math.ceil(total_steps / HISTORY_POINTS))
    first_step = step
    saved_path = Path(manager.latest_checkpoint) if manager.latest_checkpoint else None
    samples_path = loss_plot_path = None
    last_saved_s = last_report_s = time.monotonic()
    rate_since: tuple[int, float] | None = None  # (step, time) after the first step: tracing is not throughput
    # A resumed run that has nothing left to do still reports its last recorded losses.
    latest_losses: tuple[Any, Any] | None = (history["d_loss"][-1], history["g_loss"][-1]) if history["step"] else None
    stopped = False
    epoch_ended = False  # whether the grid and plot are already up to date with the latest step

    def report() -> None:
        if on_progress is None or latest_losses is None:
            return
        now = time.monotonic()
        if rate_since is not None and step > rate_since[0]:
            images_per_s = (step - rate_since[0]) * config.batch_size / max(now - rate_since[1], 1e-9)
        else:
            images_per_s = (step - first_step) * config.batch_size / max(now - started, 1e-9)
        if images_per_s <= 0 and step < total_steps:
            return  # stopped before a step of this call: nothing measured, no finite ETA to give
        eta_s = (total_steps - step) * config.batch_size / images_per_s if step < total_steps else 0.0
        on_progress(
            TrainingProgress(
                epoch=_epoch_of(step, steps_per_epoch),
                step=step,
                total_steps=total_steps,
                d_loss=float(latest_losses[0]),
                g_loss=float(latest_losses[1]),
                images_per_s=images_per_s,
                eta_s=eta_s,
            )
        )

    batches = iter(strategy.experimental_distribute_dataset(dataset.repeat()))
    while step < total_steps:
        if should_stop is not None and should_stop():
            stopped = True
            break
        try:
            batch = next(batches)
        except StopIteration:
            raise ValueError("the dataset yields no batches") from None
        keep_real(batch)
        latest_losses = train_step(batch)
        step += 1
        pending_losses.append(latest_losses)
        if rate_since is None:
            rate_since = (step, time.monotonic())
        if step % history_every == 0:
            _flush_losses(history, pending_losses, step)
        epoch_ended = step % steps_per_epoch == 0
        if epoch_ended or time.monotonic() - last_saved_s >= checkpoint_every_s:
            saved_path, last_saved_s = save(), time.monotonic()
            # With every checkpoint, not just per epoch: one paper epoch is hours, and the job page
            # should show what the generator makes long before that.
            samples_path, loss_plot_path = write_samples_and_plot()
            epoch_ended = True  # the grid and plot are up to date with this step
            if config.metrics_every == "epoch" and step % steps_per_epoch == 0:
                measure()
        if time.monotonic() - last_report_s >= PROGRESS_EVERY_S:
            report()
            last_report_s = time.monotonic()

    if saved_path is None or int(saved_path.name.rpartition("-")[2]) != step:
        saved_path = save()
    if not epoch_ended:
        samples_path, loss_plot_path = write_samples_and_plot()
    if config.metrics_every != "off" and step == total_steps and not stopped and not measured_now():
        measure()
    report()
    return TrainingResult(
        steps_done=step,
        total_steps=total_steps,
        stopped=stopped,
        d_loss=float(latest_losses[0]) if latest_losses is not None else None,
        g_loss=float(latest_losses[1]) if latest_losses is not None else None,
        seconds=time.monotonic() - started,
        checkpoint_path=saved_path,
        samples_path=samples_path,
        loss_plot_path=loss_plot_path,
        metrics=list(metrics_history),
    )


def export_generator(source: Path | keras.Model, path: Path) -> Path:
    """Save a generator as a ``.keras`` file: a model as it is, or the latest of a checkpoint folder.

    From a checkpoint the generator is rebuilt in float32: its weights are float32 either way, and
    float32 inference gives the bank the same images on any machine, with or without fast bf16.
    """
    import tensorflow as tf

    from generator.ml.dcgan import build_generator

    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"the generator is saved as a .keras file, got {path.name}")
    if isinstance(source, str | os.PathLike):
        checkpoint_dir = Path(source)
        latest = tf.train.latest_checkpoint(str(checkpoint_dir))
        if latest is None:
            raise FileNotFoundError(f"no checkpoint in {checkpoint_dir}")
        recorded = json.loads((checkpoint_dir / CONFIG_NAME).read_text())
        config = TrainingConfig.from_dict({**recorded["config"], "mixed_precision": "off"})
        generator = build_generator(config)
        tf.train.Checkpoint(generator=generator).restore(latest).expect_partial().assert_existing_objects_matched()
    else:
        generator = source
    path.parent.mkdir(parents=True, exist_ok=True)
    generator.save(path)
    return path


def load_generator(path: Path) -> keras.Model:
    import keras

    from generator.ml.dcgan import fused_batch_normalization_class

    fused_batch_normalization_class()  # registers the layer class the saved model refers to
    return keras.saving.load_model(Path(path), compile=False)


def generate(generator: keras.Model, n: int, seed: int) -> np.ndarray:
    """``n`` images [n, s, s] float32 in [−1, 1] from z ~ U(−1, 1) drawn with ``seed``: same seed, same images."""
    z_dim = generator.input_shape[-1]
    z = np.random.default_rng(seed).uniform(-1.0, 1.0, (n, z_dim)).astype(np.float32)
    return _generate_from_z(generator, z)[..., 0]


def _generate_from_z(generator: keras.Model, z: np.ndarray, batch_size: int = 64) -> np.ndarray:
    # Inference mode: batch norm uses its moving statistics, so an image depends on its z alone.
    import tensorflow as tf

    batches = [
        tf.cast(generator(z[start : start + batch_size], training=False), tf.float32).numpy()
        for start in range(0, len(z), batch_size)
    ]
    return np.concatenate(batches) if batches else np.zeros((0, *generator.output_shape[1:]), np.float32)


def _epoch_of(step: int, steps_per_epoch: int) -> int:
    return max(1, math.ceil(step / steps_per_epoch))


def _record_config(checkpoint_dir: Path, config: TrainingConfig, steps_per_epoch: int) -> None:
    path = checkpoint_dir / CONFIG_NAME
    if path.exists():
        recorded = json.loads(path.read_text())["config"]
        current = config.to_dict()
        differences = sorted(
            name for name in current if name not in RESUMABLE_FIELDS and recorded.get(name) != current[name]
        )
        if differences:
            raise ValueError(f"{checkpoint_dir} holds a run with different {', '.join(differences)}; not resuming")
    _write_json(path, {"config": config.to_dict(), "steps_per_epoch": steps_per_epoch})


def _fixed_z(checkpoint_dir: Path, config: TrainingConfig) -> np.ndarray:
    path = checkpoint_dir / FIXED_Z_NAME
    if path.exists():
        return np.load(path)
    columns = 4 if config.size >= 256 else 8  # 16 images of 256² already make a 1024² grid
    fixed_z = np.random.default_rng([config.seed, 1]).uniform(-1.0, 1.0, (columns * columns, config.z_dim))
    fixed_z = fixed_z.astype(np.float32)
    partial = path.with_name(path.name + ".partial.npy")
    np.save(partial, fixed_z)
    os.replace(partial, path)
    return fixed_z


def _load_history(checkpoint_dir: Path, *, up_to_step: int) -> dict[str, list]:
    path = checkpoint_dir / HISTORY_NAME
    history: dict[str, list] = {"step": [], "d_loss": [], "g_loss": []}
    if path.exists():
        recorded = json.loads(path.read_text())
        kept = [index for index, step in enumerate(recorded["step"]) if step <= up_to_step]
        history = {name: [recorded[name][index] for index in kept] for name in history}
    return history


def _load_metrics(checkpoint_dir: Path, *, up_to_step: int) -> list[dict]:
    path = checkpoint_dir / METRICS_NAME
    recorded = json.loads(path.read_text()) if path.exists() else []
    return [point for point in recorded if point["step"] <= up_to_step]


def _flush_losses(history: dict[str, list], pending: list[tuple[Any, Any]], step: int) -> None:
    """Append the mean losses of the steps since the last point, as one point at ``step``."""
    if not pending:
        return
    losses = np.array([(float(d_loss), float(g_loss)) for d_loss, g_loss in pending])
    history["step"].append(step)
    history["d_loss"].append(float(losses[:, 0].mean()))
    history["g_loss"].append(float(losses[:, 1].mean()))
    pending.clear()


def _write_json(path: Path, payload: object) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(payload))
    os.replace(partial, path)  # a reader never sees half a file


def _save_grid(images: np.ndarray, path: Path) -> None:
    """Images [n, s, s, 1] in [−1, 1] as a square grid PNG, with the bank's fixed [−1, 1] → 0…255 mapping.

    For watching training only (readers never see these); no per-image stretching, so intensity
    drift shows.
    """
    from PIL import Image

    count, size = images.shape[0], images.shape[1]
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.zeros((rows * size, columns * size), dtype=np.uint8)
    pixels = np.round((np.clip(images[..., 0], -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
    for index, image in enumerate(pixels):
        row, column = divmod(index, columns)
        grid[row * size : (row + 1) * size, column * size : (column + 1) * size] = image
    partial = path.with_name(path.name + ".partial")
    Image.fromarray(grid).save(partial, format="PNG")
    os.replace(partial, path)


def _save_loss_plot(history: dict[str, list], steps_per_epoch: int, path: Path) -> Path:
    # Figure and its Agg canvas directly: pyplot's global state has no place in a worker process.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(history["step"], history["d_loss"], label="discriminator")
    axes.plot(history["step"], history["g_loss"], label="generator")
    last_step = history["step"][-1] if history["step"] else 0
    epoch_boundaries = range(steps_per_epoch, last_step + 1, steps_per_epoch)
    for boundary in epoch_boundaries if len(epoch_boundaries) <= 100 else ():
        axes.axvline(boundary, color="0.85", linewidth=0.8, zorder=0)
    axes.set_xlabel(f"step (epoch = {steps_per_epoch} steps)")
    axes.set_ylabel("loss")
    axes.legend()
    figure.tight_layout()
    partial = path.with_name(path.name + ".partial")
    figure.savefig(partial, format="png")
    os.replace(partial, path)
    return path


def generate_from_seeds(generator: keras.Model, seeds: list[int]) -> np.ndarray:
    """One image per latent seed, [n, s, s]: image i equals ``generate(generator, 1, seeds[i])``, so
    every bank image can be recomputed from (generator, seed)."""
    z_dim = generator.input_shape[-1]
    z = np.stack([np.random.default_rng(seed).uniform(-1.0, 1.0, (1, z_dim))[0] for seed in seeds]).astype(np.float32)
    return _generate_from_z(generator, z)[..., 0]
