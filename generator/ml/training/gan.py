"""The paper's DCGAN as one Keras model whose ``train_step`` is the paper's update (after keras-io's
``examples/generative/dcgan_overriding_train_step.py``).

Imports TensorFlow at the top: only the training loop imports this module, inside ``train``.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from generator.ml.dcgan import TrainingConfig, build_discriminator, build_generator, build_optimizer


class GAN(keras.Model):
    """Generator and discriminator, their optimizers, the noise stream and the counters a checkpoint keeps.

    ``step`` counts discriminator updates over every resume; ``trained_seconds`` is the training time
    spent so far, which a budget in minutes is measured against.
    """

    def __init__(self, config: TrainingConfig) -> None:
        super().__init__(name="dcgan")
        self.config = config
        self.generator = build_generator(config)
        self.discriminator = build_discriminator(config)
        self.generator_optimizer = build_optimizer(config)
        self.discriminator_optimizer = build_optimizer(config, discriminator=True)
        # The moving average of the generator's weights, where the config asks for one: it draws the
        # samples, is measured and fills the bank (``sampling_generator``).
        self.ema_generator = None
        if config.generator_ema_decay > 0:
            self.ema_generator = build_generator(config)
            self.ema_generator.set_weights(self.generator.get_weights())
        # Built now rather than on the first step, so a restore fills their slots instead of deferring.
        self.generator_optimizer.build(self.generator.trainable_variables)
        self.discriminator_optimizer.build(self.discriminator.trainable_variables)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.trained_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="trained_seconds")
        # In the checkpoint, so a resumed run continues the noise stream rather than replaying it.
        self.noise = tf.random.Generator.from_seed(config.seed)
        self.real_label = 1.0 - config.label_smoothing  # one-sided label smoothing

    def checkpoint(self, *, with_training_time: bool = True) -> tf.train.Checkpoint:
        """What a checkpoint holds, under the names every earlier run used (runs saved before
        budgets in minutes have no training time)."""
        saved = {
            "generator": self.generator,
            "discriminator": self.discriminator,
            "generator_optimizer": self.generator_optimizer,
            "discriminator_optimizer": self.discriminator_optimizer,
            "step": self.step,
            "noise": self.noise,
        }
        if with_training_time:
            saved["trained_seconds"] = self.trained_seconds
        if self.ema_generator is not None:
            saved["ema_generator"] = self.ema_generator
        return tf.train.Checkpoint(**saved)

    @property
    def sampling_generator(self) -> keras.Model:
        """The generator that draws samples, is measured and fills the bank: the average where there is one."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def update_ema(self) -> None:
        """Move the average towards the generator's weights (batch norm's moving statistics too).

        The decay ramps up with the steps, as TensorFlow's ExponentialMovingAverage does with
        num_updates: min(decay, (1 + step) / (10 + step)). At a fixed 0.999 a run of a few hundred
        steps would average in half its random initial weights, and the average would draw one image.
        """
        if self.ema_generator is None:
            return
        step = tf.cast(self.step, tf.float32)
        decay = tf.minimum(self.config.generator_ema_decay, (1.0 + step) / (10.0 + step))
        for average, weight in zip(self.ema_generator.weights, self.generator.weights, strict=True):
            rate = tf.cast(decay, average.dtype)
            average.assign(rate * average + (1.0 - rate) * tf.cast(weight, average.dtype))

    def seen_by_discriminator(self, images: tf.Tensor) -> tf.Tensor:
        """What the discriminator sees: the images, augmented where the config asks (DiffAugment)."""
        if not self.config.diff_augment:
            return images
        from generator.ml.training.augment import diff_augment

        return diff_augment(images, self.config.diff_augment, self.noise)

    def latent(self, batch: tf.Tensor) -> tf.Tensor:
        """z ~ U(−1, 1)^z_dim, as the paper draws it."""
        return self.noise.uniform([batch, self.config.z_dim], -1.0, 1.0)

    def cross_entropy(self, label: float, logits: tf.Tensor) -> tf.Tensor:
        # Averaged over the global batch, so summing the replicas' gradients gives the batch mean.
        per_image = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), label), logits=logits)
        return tf.nn.compute_average_loss(tf.reduce_sum(per_image, axis=-1))

    def train_step(self, real_images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """One discriminator update on a real and a generated batch, then the generator's
        (once, or twice as in the TF1 DCGAN). Returns this replica's (d_loss, g_loss)."""
        batch = tf.shape(real_images)[0]
        d_loss = self.discriminator_update(real_images)
        for _ in range(self.config.generator_steps_per_discriminator_step):
            g_loss = self.generator_update(batch)
        return d_loss, g_loss

    def discriminator_update(self, real_images: tf.Tensor) -> tf.Tensor:
        """D learns to tell the real batch (label 1, smoothed if asked) from a generated one (label 0)."""
        fake_images = self.generator(self.latent(tf.shape(real_images)[0]), training=True)
        with tf.GradientTape() as tape:
            real_logits = self.discriminator(self.seen_by_discriminator(real_images), training=True)
            fake_logits = self.discriminator(self.seen_by_discriminator(fake_images), training=True)
            d_loss = self.cross_entropy(self.real_label, real_logits) + self.cross_entropy(0.0, fake_logits)
        weights = self.discriminator.trainable_variables
        self.discriminator_optimizer.apply_gradients(zip(tape.gradient(d_loss, weights), weights, strict=True))
        return d_loss

    def generator_update(self, batch: tf.Tensor) -> tf.Tensor:
        """G learns to make D call a generated batch real (the non-saturating loss: −log D(G(z))),
        and, where the config weighs it, to draw different images from different z (mode seeking).
        Returns the adversarial loss alone, so loss curves compare across presets."""
        with tf.GradientTape() as tape:
            z = self.latent(batch)
            fake_images = self.generator(z, training=True)
            fake_logits = self.discriminator(self.seen_by_discriminator(fake_images), training=True)
            g_loss = self.cross_entropy(1.0, fake_logits)
            total = g_loss
            if self.config.mode_seeking_weight > 0:
                total += self.config.mode_seeking_weight * mode_seeking_term(z, fake_images)
        weights = self.generator.trainable_variables
        self.generator_optimizer.apply_gradients(zip(tape.gradient(total, weights), weights, strict=True))
        return g_loss


MODE_SEEKING_EPSILON = 1e-5  # Mao et al.'s: keeps the term finite for a generator that draws one image


def mode_seeking_term(z: tf.Tensor, images: tf.Tensor) -> tf.Tensor:
    """The mode-seeking regulariser (Mao et al., CVPR 2019, "Mode Seeking Generative Adversarial
    Networks for Diverse Image Synthesis", eq. 3), over the pairs (first half, second half) of a batch:
    mean |z1 − z2| / (mean |G(z1) − G(z2)| + ε) per pair, averaged like the losses. Large where
    different latent vectors draw alike images, so minimising it spreads the generator's images out;
    it is what keeps minutes of CPU training from collapsing onto one brain (benchmarks/README.md)."""
    half = tf.shape(z)[0] // 2
    latent_gap = tf.reduce_mean(tf.abs(z[:half] - z[half : 2 * half]), axis=1)
    image_gap = tf.reduce_mean(tf.abs(images[:half] - images[half : 2 * half]), axis=[1, 2, 3])
    return tf.nn.compute_average_loss(latent_gap / (image_gap + MODE_SEEKING_EPSILON))


def compiled_step(gan: GAN, strategy: tf.distribute.Strategy):
    """``gan.train_step`` on every replica as one graph; returns the global batch's (d_loss, g_loss)."""

    @tf.function(reduce_retracing=True)  # a last partial batch must not trace a second graph per shape
    def step(real_images) -> tuple[tf.Tensor, tf.Tensor]:
        d_loss, g_loss = strategy.run(gan.train_step, args=(real_images,))
        gan.update_ema()  # across replicas: their generators are in sync after the update
        gan.step.assign_add(1)
        total = tf.distribute.ReduceOp.SUM
        return strategy.reduce(total, d_loss, axis=None), strategy.reduce(total, g_loss, axis=None)

    return step
