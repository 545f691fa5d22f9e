"""``train``: build the GAN, restore its latest checkpoint, run steps until the budget is spent.

The loop is Keras's ``fit`` contract at the grain of one step: before each step the callbacks'
``on_train_batch_begin`` and ``stop_training``; after it ``on_train_batch_end``; ``on_train_begin``
and ``on_train_end`` around the run. It is ours rather than ``fit`` itself because a job must
resume at the exact step it stopped at (``fit`` resumes at epoch boundaries, and one paper epoch
is hours) and stop on a budget in minutes.

Resuming restores everything (weights, optimizers, step, noise stream, training time) and runs
what the budget has left; a finished run does nothing more. The data order is not part of the
state: a resumed run iterates its dataset afresh, since a GAN's progress does not depend on seeing
exactly the rest of an interrupted epoch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from generator.ml import metrics as quality
from generator.ml.dcgan import TrainingConfig
from generator.ml.training.budget import Budget
from generator.ml.training.run_folder import LossHistory, fixed_z, load_metrics, record_config

if TYPE_CHECKING:
    import tensorflow as tf

PROGRESS_EVERY_S = 2.0
CHECKPOINTS_KEPT = 3


@dataclass(frozen=True)
class TrainingProgress:
    """One progress report; ``epoch`` is the 1-based epoch the latest step belongs to. All finite.

    ``total_steps`` and ``seconds_left`` are None where the budget does not fix them (a budget in
    minutes has no step count; a budget in steps no deadline); ``fraction`` is the budget spent.
    """

    epoch: int
    step: int
    total_steps: int | None
    d_loss: float
    g_loss: float
    images_per_s: float
    eta_s: float
    trained_s: float
    budget_s: float | None
    seconds_left: float | None
    fraction: float


@dataclass(frozen=True)
class TrainingResult:
    steps_done: int
    total_steps: int | None  # None for a budget in minutes
    stopped: bool
    d_loss: float | None
    g_loss: float | None
    seconds: float  # this call's wall time
    trained_s: float  # training time over every call, as the budget counts it
    checkpoint_path: Path | None
    samples_path: Path | None
    loss_plot_path: Path | None
    metrics: list[dict] = field(default_factory=list)  # one point per measured step, as in metrics.json


def train(
    config: TrainingConfig,
    dataset: tf.data.Dataset,
    *,
    steps_per_epoch: int,
    checkpoint_dir: Path,
    on_progress: Callable[[TrainingProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    sample_dir: Path | None = None,
    checkpoint_every_s: float = 300,
    progress_every_s: float = PROGRESS_EVERY_S,
    on_metrics: Callable[[list[dict]], None] | None = None,
    metrics_sample_count: int | None = None,
) -> TrainingResult:
    """Train (or resume training) the DCGAN on batches [b, s, s, 1] in [−1, 1] until the budget is spent.

    The dataset is repeated: an epoch is ``steps_per_epoch`` steps, whatever the dataset's length.
    A checkpoint is saved every epoch, every ``checkpoint_every_s`` and at the end; a sample grid
    (``sample_dir``, default ``checkpoint_dir/samples``) and ``loss.png`` with each checkpoint.
    ``should_stop`` is asked before every step: True saves a checkpoint and returns ``stopped=True``;
    an exception it raises (a lost lease) propagates without saving, since another worker may own
    the run by then. A budget in minutes (``config.minutes``) counts training time over every call.
    Quality metrics per ``config.metrics_every``, after the checkpoint of each epoch's end ("epoch")
    and of the run's end ("epoch", "end"; not when stopped), on ``metrics_sample_count`` (default
    ``metrics.SAMPLE_COUNT``) images of each kind; each new point goes to ``metrics.json`` and the
    whole list, {step, epoch, swd_mean, swd_levels, ms_ssim_synthetic, ms_ssim_real, scales, pairs,
    sample_count}, to ``on_metrics`` (a resume first hands over the points up to its checkpoint).
    """
    import keras
    import tensorflow as tf

    from generator.ml.hardware import configure_gpus, distribution_strategy
    from generator.ml.training import callbacks
    from generator.ml.training.gan import GAN, compiled_step

    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be positive, got {steps_per_epoch}")
    started_s = time.monotonic()
    checkpoint_dir = Path(checkpoint_dir)
    sample_dir = Path(sample_dir) if sample_dir is not None else checkpoint_dir / "samples"
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    sample_dir.mkdir(parents=True, exist_ok=True)
    record_config(checkpoint_dir, config, steps_per_epoch)

    configure_gpus()
    strategy = distribution_strategy()
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        gan = GAN(config)
    manager = tf.train.CheckpointManager(
        gan.checkpoint(), str(checkpoint_dir), max_to_keep=CHECKPOINTS_KEPT, step_counter=gan.step
    )
    _restore_latest(gan, manager)
    step = int(gan.step.numpy())
    budget = Budget.of(config, steps_per_epoch=steps_per_epoch)
    run = callbacks.Run(
        config=config,
        steps_per_epoch=steps_per_epoch,
        checkpoint_dir=checkpoint_dir,
        sample_dir=sample_dir,
        gan=gan,
        manager=manager,
        budget=budget,
        history=LossHistory.for_budget(checkpoint_dir, up_to_step=step, total_steps=budget.steps),
        metrics=load_metrics(checkpoint_dir, up_to_step=step),
        step=step,
        started_s=started_s,
        trained_before_s=float(gan.trained_seconds.numpy()),
        saved_step=step if manager.latest_checkpoint else None,
    )
    sample_count = 0 if config.metrics_every == "off" else metrics_sample_count or quality.SAMPLE_COUNT
    batches = callbacks.RealSample(
        iter(strategy.experimental_distribute_dataset(dataset.repeat())), strategy, sample_count
    )
    run_callbacks = [
        callbacks.StopWhenAsked(run, should_stop or (lambda: False)),
        callbacks.LossCurve(run),
        callbacks.Checkpoints(run, every_s=checkpoint_every_s),
        callbacks.SampleGrids(run, fixed_z(checkpoint_dir, config)),
        callbacks.QualityMetrics(run, batches, on_metrics),
    ]
    if on_progress is not None:
        run_callbacks.append(callbacks.ProgressReport(run, on_progress, every_s=progress_every_s))
    _run_steps(run, compiled_step(gan, strategy), batches, run_callbacks)

    return TrainingResult(
        steps_done=run.step,
        total_steps=budget.steps,
        stopped=run.stopped,
        d_loss=float(run.latest_losses[0]) if run.latest_losses is not None else None,
        g_loss=float(run.latest_losses[1]) if run.latest_losses is not None else None,
        seconds=time.monotonic() - started_s,
        trained_s=float(gan.trained_seconds.numpy()),
        checkpoint_path=Path(manager.latest_checkpoint) if manager.latest_checkpoint else None,
        samples_path=run.samples_path,
        loss_plot_path=run.loss_plot_path,
        metrics=list(run.metrics),
    )


def _run_steps(run, step_function, batches, run_callbacks) -> None:
    """Steps until the budget is spent or a callback sets ``stop_training``."""
    for callback in run_callbacks:
        callback.set_model(run.gan)
        callback.on_train_begin()
    run.gan.stop_training = False
    while not run.budget.spent(step=run.step, trained_s=run.trained_s()):
        for callback in run_callbacks:
            callback.on_train_batch_begin(run.step)
        if run.gan.stop_training:
            break
        d_loss, g_loss = step_function(next(batches))
        run.step += 1
        for callback in run_callbacks:
            callback.on_train_batch_end(run.step, {"d_loss": d_loss, "g_loss": g_loss})
        if run.gan.stop_training:
            break
    for callback in run_callbacks:
        callback.on_train_end()


def _restore_latest(gan, manager) -> None:
    """The latest checkpoint, if any, every object matched. One saved before training time was
    kept restores all the rest, and its clock starts at 0."""
    import tensorflow as tf

    latest = manager.latest_checkpoint
    if latest is None:
        return
    saved = {name.partition("/")[0] for name, _ in tf.train.list_variables(latest)}
    gan.checkpoint(with_training_time="trained_seconds" in saved).restore(latest).assert_existing_objects_matched()
