"""A trained generator: exported from a run folder as a .keras file, loaded, and sampled by seed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from generator.ml.dcgan import TrainingConfig
from generator.ml.training.run_folder import recorded_config

if TYPE_CHECKING:
    import keras


def export_generator(source: Path | keras.Model, path: Path) -> Path:
    """Save a generator as a ``.keras`` file: a model as it is, or the latest of a checkpoint folder.

    From a checkpoint the generator is rebuilt in float32: its weights are float32 either way, and
    float32 inference gives the bank the same images on any machine, with or without fast bf16. A run
    that kept a moving average of its generator's weights exports the average.
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
        config = TrainingConfig.from_dict({**recorded_config(checkpoint_dir), "mixed_precision": "off"})
        generator = build_generator(config)
        saved_as = "ema_generator" if config.generator_ema_decay > 0 else "generator"
        tf.train.Checkpoint(**{saved_as: generator}).restore(latest).expect_partial().assert_existing_objects_matched()
    else:
        generator = source
    path.parent.mkdir(parents=True, exist_ok=True)
    generator.save(path)
    return path


def load_generator(path: Path) -> keras.Model:
    import keras

    from generator.ml.layers import fused_batch_normalization_class

    fused_batch_normalization_class()  # registers the layer class the saved model refers to
    return keras.saving.load_model(Path(path), compile=False)


def generate(generator: keras.Model, n: int, seed: int) -> np.ndarray:
    """``n`` images [n, s, s] float32 in [−1, 1] from z ~ U(−1, 1) drawn with ``seed``: same seed, same images."""
    z_dim = generator.input_shape[-1]
    z = np.random.default_rng(seed).uniform(-1.0, 1.0, (n, z_dim)).astype(np.float32)
    return generate_from_z(generator, z)[..., 0]


def generate_from_seeds(generator: keras.Model, seeds: list[int]) -> np.ndarray:
    """One image per latent seed, [n, s, s]: image i equals ``generate(generator, 1, seeds[i])``, so
    every bank image can be recomputed from (generator, seed)."""
    z_dim = generator.input_shape[-1]
    z = np.stack([np.random.default_rng(seed).uniform(-1.0, 1.0, (1, z_dim))[0] for seed in seeds]).astype(np.float32)
    return generate_from_z(generator, z)[..., 0]


def generate_from_z(generator: keras.Model, z: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Images [n, s, s, 1] for the rows of ``z``, in inference mode: batch norm uses its moving
    statistics, so an image depends on its z alone."""
    import tensorflow as tf

    batches = [
        tf.cast(generator(z[start : start + batch_size], training=False), tf.float32).numpy()
        for start in range(0, len(z), batch_size)
    ]
    return np.concatenate(batches) if batches else np.zeros((0, *generator.output_shape[1:]), np.float32)
