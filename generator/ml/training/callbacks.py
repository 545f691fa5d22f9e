"""What happens between training steps, one Keras callback each, in the order the loop calls them:

    StopWhenAsked     asks should_stop before each step (a cancel; a lost lease's exception propagates)
    LossCurve         adds each step's losses to the loss history
    Checkpoints       saves at each epoch's end, every checkpoint_every_s and at the end
    SampleGrids       a sample grid and the loss plot with every checkpoint, and at the end
    QualityMetrics    SWD and MS-SSIM diversity at epoch ends ("epoch") and at the run's end
    ProgressReport    a TrainingProgress every progress_every_s, and at the end

They share one ``Run``: the run's state, which each reads and the loop and ``Checkpoints`` advance.
Imported by the loop only (TensorFlow comes with it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from generator.ml import metrics as quality
from generator.ml.dcgan import TrainingConfig
from generator.ml.training.budget import Budget
from generator.ml.training.gan import GAN
from generator.ml.training.generators import generate_from_z
from generator.ml.training.loop import TrainingProgress
from generator.ml.training.run_folder import (
    LOSS_PLOT_NAME,
    LossHistory,
    epoch_of,
    save_grid,
    save_loss_plot,
    write_metrics,
)


@dataclass
class Run:
    """The state of one call to ``train``, shared by the loop and its callbacks."""

    config: TrainingConfig
    steps_per_epoch: int
    checkpoint_dir: Path
    sample_dir: Path
    gan: GAN
    manager: tf.train.CheckpointManager
    budget: Budget
    history: LossHistory
    metrics: list[dict]
    step: int
    started_s: float  # time.monotonic() when train() began
    trained_before_s: float  # training time of earlier calls, from the checkpoint
    saved_step: int | None = None
    pictures_step: int | None = None  # the step the sample grid and the loss plot show
    samples_path: Path | None = None
    loss_plot_path: Path | None = None
    latest_losses: tuple[Any, Any] | None = None
    stopped: bool = False
    first_step: int = field(init=False)

    def __post_init__(self) -> None:
        self.first_step = self.step
        self.latest_losses = self.history.latest  # a resumed run with nothing left still reports them

    def trained_s(self) -> float:
        return self.trained_before_s + time.monotonic() - self.started_s

    @property
    def epoch_ended(self) -> bool:
        return self.step % self.steps_per_epoch == 0

    @property
    def finished(self) -> bool:
        return not self.stopped and self.budget.spent(step=self.step, trained_s=self.trained_s())


class RunCallback(keras.callbacks.Callback):
    def __init__(self, run: Run) -> None:
        super().__init__()
        self.run = run


class StopWhenAsked(RunCallback):
    def __init__(self, run: Run, should_stop: Callable[[], bool]) -> None:
        super().__init__(run)
        self.should_stop = should_stop

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if self.should_stop():  # an exception (a lost lease) propagates: another worker may own the run
            self.run.stopped = self.model.stop_training = True


class LossCurve(RunCallback):
    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.run.latest_losses = (logs["d_loss"], logs["g_loss"])
        self.run.history.add(self.run.latest_losses, step=self.run.step)


class Checkpoints(RunCallback):
    def __init__(self, run: Run, every_s: float) -> None:
        super().__init__(run)
        self.every_s = every_s
        self.saved_at_s = time.monotonic()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.run.epoch_ended or time.monotonic() - self.saved_at_s >= self.every_s:
            self.save()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.run.saved_step != self.run.step:
            self.save()

    def save(self) -> None:
        run = self.run
        run.history.flush(step=run.step)
        run.gan.trained_seconds.assign(run.trained_s())
        run.manager.save(checkpoint_number=run.step)
        # After the checkpoint: a crash in between leaves history behind, never ahead (trimmed on resume).
        run.history.write()
        run.saved_step, self.saved_at_s = run.step, time.monotonic()


class SampleGrids(RunCallback):
    def __init__(self, run: Run, fixed_z: np.ndarray) -> None:
        super().__init__(run)
        self.fixed_z = fixed_z

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        # With every checkpoint, not just per epoch: one paper epoch is hours, and the job page
        # should show what the generator makes long before that.
        if self.run.saved_step == self.run.step:
            self.draw()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.run.pictures_step != self.run.step:
            self.draw()

    def draw(self) -> None:
        run = self.run
        epoch = epoch_of(run.step, run.steps_per_epoch)
        grid = generate_from_z(run.gan.sampling_generator, self.fixed_z)
        run.samples_path = save_grid(grid, run.sample_dir / f"samples-epoch-{epoch:04d}.png")
        run.loss_plot_path = save_loss_plot(run.history.points, run.steps_per_epoch, run.sample_dir / LOSS_PLOT_NAME)
        run.pictures_step = run.step


class RealSample:
    """The run's batches, keeping the first ``count`` real images that pass for the quality metrics.

    They are the first images of the run's own stream; a new stream with the same seed replays the
    same epochs, so a resumed run measures against the same real set and its points compare.
    """

    def __init__(self, batches: Iterator, strategy: tf.distribute.Strategy, count: int) -> None:
        self.batches, self.strategy, self.count = batches, strategy, count
        self.kept: list[np.ndarray] = []

    def __iter__(self) -> RealSample:
        return self

    def __next__(self) -> Any:
        try:
            batch = next(self.batches)
        except StopIteration:
            raise ValueError("the dataset yields no batches") from None
        if self.count and self._kept_count() < self.count:
            self.kept.extend(images.numpy()[..., 0] for images in self.strategy.experimental_local_results(batch))
        return batch

    def images(self) -> np.ndarray:
        while self._kept_count() < self.count:
            next(self)  # a run shorter than the sample reads on, without training on it
        return np.concatenate(self.kept)

    def _kept_count(self) -> int:
        return sum(map(len, self.kept))


class QualityMetrics(RunCallback):
    def __init__(self, run: Run, real: RealSample, on_metrics: Callable[[list[dict]], None] | None) -> None:
        super().__init__(run)
        self.real, self.on_metrics = real, on_metrics

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.run.step > 0 and self.on_metrics is not None:
            self.on_metrics(list(self.run.metrics))  # a resumed run's points, trimmed to its checkpoint

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        run = self.run
        if run.config.metrics_every == "epoch" and run.epoch_ended and run.saved_step == run.step:
            self.measure()

    def on_train_end(self, logs: dict | None = None) -> None:
        run = self.run
        measured_now = bool(run.metrics) and run.metrics[-1]["step"] == run.step
        if run.config.metrics_every != "off" and run.finished and not measured_now:
            self.measure()

    def measure(self) -> None:
        run = self.run
        count = self.real.count
        z = np.random.default_rng([run.config.seed, 2]).uniform(-1.0, 1.0, (count, run.config.z_dim))
        figures = quality.quality_metrics(
            self.real.images(),
            generate_from_z(run.gan.sampling_generator, z.astype(np.float32)),
            seed=run.config.seed,
            sample_count=count,
        )
        run.metrics.append({"step": run.step, "epoch": epoch_of(run.step, run.steps_per_epoch), **figures})
        write_metrics(run.checkpoint_dir, run.metrics)
        if self.on_metrics is not None:
            self.on_metrics(list(run.metrics))


class ProgressReport(RunCallback):
    def __init__(self, run: Run, on_progress: Callable[[TrainingProgress], None], every_s: float) -> None:
        super().__init__(run)
        self.on_progress, self.every_s = on_progress, every_s
        self.reported_at_s = time.monotonic()
        self.rate_since: tuple[int, float] | None = None  # (step, time) after the first step: tracing is not throughput

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.rate_since is None:
            self.rate_since = (self.run.step, time.monotonic())
        if time.monotonic() - self.reported_at_s >= self.every_s:
            self.report()
            self.reported_at_s = time.monotonic()

    def on_train_end(self, logs: dict | None = None) -> None:
        self.report()

    def steps_per_s(self) -> float:
        run, now = self.run, time.monotonic()
        if self.rate_since is not None and run.step > self.rate_since[0]:
            return (run.step - self.rate_since[0]) / max(now - self.rate_since[1], 1e-9)
        return (run.step - run.first_step) / max(now - run.started_s, 1e-9)

    def report(self) -> None:
        run = self.run
        if run.latest_losses is None:
            return
        trained_s, steps_per_s = run.trained_s(), self.steps_per_s()
        eta_s = run.budget.eta_s(step=run.step, trained_s=trained_s, steps_per_s=steps_per_s)
        if run.finished:
            eta_s = 0.0
        if eta_s is None:
            return  # stopped before a step of this call: nothing measured, no finite ETA to give
        self.on_progress(
            TrainingProgress(
                epoch=epoch_of(run.step, run.steps_per_epoch),
                step=run.step,
                total_steps=run.budget.steps,
                d_loss=float(run.latest_losses[0]),
                g_loss=float(run.latest_losses[1]),
                images_per_s=steps_per_s * run.config.batch_size,
                eta_s=eta_s,
                trained_s=trained_s,
                budget_s=run.budget.seconds,
                seconds_left=run.budget.seconds_left(trained_s=trained_s),
                fraction=run.budget.fraction_done(step=run.step, trained_s=trained_s),
            )
        )
