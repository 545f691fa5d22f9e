"""The files of a run folder, beside TensorFlow's checkpoints; each is replaced whole, never half-written.

config.json    the run's TrainingConfig (and steps per epoch); a resume must match it
fixed_z.npy    the z behind every sample grid, so grids stay comparable across resumes
history.json   mean losses per block of steps, written with each checkpoint
metrics.json   the quality metrics (generator.ml.metrics) per measured step
samples/       a sample grid per checkpoint's epoch, and loss.png
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from generator.ml.dcgan import TrainingConfig

CONFIG_NAME, FIXED_Z_NAME, HISTORY_NAME, LOSS_PLOT_NAME = "config.json", "fixed_z.npy", "history.json", "loss.png"
METRICS_NAME = "metrics.json"
HISTORY_POINTS = 1000  # the loss curve keeps about this many points, whatever the run's length
# A resumed run may change its budget and measure more or less often; nothing else may change.
RESUMABLE_FIELDS = ("epochs", "steps", "minutes", "metrics_every")


def epoch_of(step: int, steps_per_epoch: int) -> int:
    """The 1-based epoch a step belongs to."""
    return max(1, math.ceil(step / steps_per_epoch))


def record_config(checkpoint_dir: Path, config: TrainingConfig, steps_per_epoch: int) -> None:
    path = checkpoint_dir / CONFIG_NAME
    if path.exists():
        # A run recorded before a field existed ran with that field's default.
        recorded = {**TrainingConfig.defaults(), **json.loads(path.read_text())["config"]}
        current = config.to_dict()
        differences = sorted(
            name for name in current if name not in RESUMABLE_FIELDS and recorded.get(name) != current[name]
        )
        if differences:
            raise ValueError(f"{checkpoint_dir} holds a run with different {', '.join(differences)}; not resuming")
    write_json(path, {"config": config.to_dict(), "steps_per_epoch": steps_per_epoch})


def recorded_config(checkpoint_dir: Path) -> dict:
    return json.loads((checkpoint_dir / CONFIG_NAME).read_text())["config"]


def fixed_z(checkpoint_dir: Path, config: TrainingConfig) -> np.ndarray:
    path = checkpoint_dir / FIXED_Z_NAME
    if path.exists():
        return np.load(path)
    columns = 4 if config.size >= 256 else 8  # 16 images of 256² already make a 1024² grid
    z = np.random.default_rng([config.seed, 1]).uniform(-1.0, 1.0, (columns * columns, config.z_dim))
    z = z.astype(np.float32)
    partial = path.with_name(path.name + ".partial.npy")
    np.save(partial, z)
    os.replace(partial, path)
    return z


class LossHistory:
    """The loss curve: the mean losses of each block of ``every`` steps, one point per block.

    Losses are kept as the step returned them (tensors) until a point is made, so the loop does not
    wait for each step's result.
    """

    def __init__(self, checkpoint_dir: Path, *, up_to_step: int, every: int) -> None:
        self.path = checkpoint_dir / HISTORY_NAME
        self.every = every
        self.points: dict[str, list] = {"step": [], "d_loss": [], "g_loss": []}
        if self.path.exists():  # a resumed run's points, trimmed to its checkpoint
            recorded = json.loads(self.path.read_text())
            kept = [index for index, step in enumerate(recorded["step"]) if step <= up_to_step]
            self.points = {name: [recorded[name][index] for index in kept] for name in self.points}
        self.pending: list[tuple[Any, Any]] = []

    @classmethod
    def for_budget(cls, checkpoint_dir: Path, *, up_to_step: int, total_steps: int | None) -> LossHistory:
        # A budget in minutes has no step count up front: a point per step until the curve is long.
        every = max(1, math.ceil(total_steps / HISTORY_POINTS)) if total_steps else 1
        return cls(checkpoint_dir, up_to_step=up_to_step, every=every)

    @property
    def latest(self) -> tuple[float, float] | None:
        if not self.points["step"]:
            return None
        return self.points["d_loss"][-1], self.points["g_loss"][-1]

    def add(self, losses: tuple[Any, Any], *, step: int) -> None:
        self.pending.append(losses)
        if step % self.every == 0:
            self.flush(step=step)
        if len(self.points["step"]) > 2 * HISTORY_POINTS:  # a long run in minutes: coarsen the curve
            self._merge_pairs()
            self.every *= 2

    def _merge_pairs(self) -> None:
        steps, d_losses, g_losses = self.points["step"], self.points["d_loss"], self.points["g_loss"]
        pairs = range(0, len(steps) - 1, 2)
        merged = {
            "step": [steps[index + 1] for index in pairs],
            "d_loss": [(d_losses[index] + d_losses[index + 1]) / 2 for index in pairs],
            "g_loss": [(g_losses[index] + g_losses[index + 1]) / 2 for index in pairs],
        }
        if len(steps) % 2:
            for name in merged:
                merged[name].append(self.points[name][-1])
        self.points = merged

    def flush(self, *, step: int) -> None:
        """The steps since the last point become one point at ``step``."""
        if not self.pending:
            return
        losses = np.array([(float(d_loss), float(g_loss)) for d_loss, g_loss in self.pending])
        self.points["step"].append(step)
        self.points["d_loss"].append(float(losses[:, 0].mean()))
        self.points["g_loss"].append(float(losses[:, 1].mean()))
        self.pending.clear()

    def write(self) -> None:
        write_json(self.path, self.points)


def load_metrics(checkpoint_dir: Path, *, up_to_step: int) -> list[dict]:
    path = checkpoint_dir / METRICS_NAME
    recorded = json.loads(path.read_text()) if path.exists() else []
    return [point for point in recorded if point["step"] <= up_to_step]


def write_metrics(checkpoint_dir: Path, points: list[dict]) -> None:
    write_json(checkpoint_dir / METRICS_NAME, points)


def write_json(path: Path, payload: object) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(payload))
    os.replace(partial, path)  # a reader never sees half a file


def save_grid(images: np.ndarray, path: Path) -> Path:
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
    return path


def save_loss_plot(history: dict[str, list], steps_per_epoch: int, path: Path) -> Path:
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
