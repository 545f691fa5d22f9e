"""Keras layers the DCGAN needs that Keras does not have, each defined on first use (TensorFlow is
imported inside) and registered, so a saved generator loads: batch norm on TensorFlow's fused
kernel, and the minibatch standard deviation."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

MINIBATCH_STDDEV_GROUP = 4  # Karras et al.'s group size


@functools.cache
def fused_batch_normalization_class() -> type[keras.layers.BatchNormalization]:
    """Keras's BatchNormalization computed by TensorFlow's fused kernel (defined on first use).

    Same function, same weights, same moving averages; Keras 3 builds batch norm from separate ops
    and upcasts bf16 inputs to float32, which made it a third of a CPU training step. The fused
    kernel normalises bf16 inputs in place, accumulating its statistics in float32.
    """
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="synthread")
    class FusedBatchNormalization(keras.layers.BatchNormalization):
        def call(self, inputs, training=None, mask=None):
            if mask is not None or self.renorm or len(inputs.shape) != 4 or self.axis not in (-1, 3):
                return super().call(inputs, training=training, mask=mask)
            inputs = tf.cast(inputs, self.compute_dtype)
            if training and self.trainable:
                outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                    inputs, self.gamma.value, self.beta.value, epsilon=self.epsilon, is_training=True
                )
                self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
                self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
                return outputs
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs,
                self.gamma.value,
                self.beta.value,
                mean=self.moving_mean.value,
                variance=self.moving_variance.value,
                epsilon=self.epsilon,
                is_training=False,
            )
            return outputs

    return FusedBatchNormalization


@functools.cache
def minibatch_stddev_class() -> type[keras.layers.Layer]:
    """Karras et al. 2018 (ICLR, "Progressive growing of GANs", section 3): the standard deviation of
    each feature over a group of images, averaged to one number, appended to each image as a feature
    map. A generator that draws one image scores 0 there, which real groups never do, so the
    discriminator sees a lack of variety that no single image shows."""
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="synthread")
    class MinibatchStddev(keras.layers.Layer):
        def call(self, inputs):
            shape = tf.shape(inputs)
            group = tf.minimum(MINIBATCH_STDDEV_GROUP, shape[0])  # a batch is a whole number of groups
            features = tf.cast(inputs, tf.float32)
            grouped = tf.reshape(features, [group, -1, shape[1], shape[2], shape[3]])
            spread = tf.sqrt(tf.math.reduce_variance(grouped, axis=0) + 1e-8)  # [b / group, h, w, c]
            per_group = tf.reduce_mean(spread, axis=[1, 2, 3], keepdims=True)  # [b / group, 1, 1, 1]
            per_image = tf.tile(per_group, [group, shape[1], shape[2], 1])  # image i is in group i mod (b / group)
            return tf.concat([inputs, tf.cast(per_image, inputs.dtype)], axis=-1)

        def compute_output_shape(self, input_shape):
            return (*input_shape[:-1], input_shape[-1] + 1)

    return MinibatchStddev
