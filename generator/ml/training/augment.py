"""DiffAugment for grey MR slices (Zhao et al., NeurIPS 2020): random translation and cutout, as
TensorFlow ops the generator's gradient flows through, applied to every image the discriminator sees.

Images are [b, s, s, 1] in [−1, 1]. Where the paper's code fills with 0 (mid-grey in [−1, 1]), here
the background's −1 fills: a slice's surround is black, and a grey frame would be a tell. The random
numbers come from the run's noise generator, so a resumed run continues the same stream.
"""

from __future__ import annotations

import tensorflow as tf

BACKGROUND = -1.0
TRANSLATION_RATIO = 0.125  # shifts of up to s/8 in each direction, as in DiffAugment
CUTOUT_RATIO = 0.5  # a square of side s/2, as in DiffAugment


def diff_augment(images: tf.Tensor, policies: str, noise: tf.random.Generator) -> tf.Tensor:
    for policy in filter(None, policies.split(",")):
        images = AUGMENTATIONS[policy](images, noise)
    return images


def translation(images: tf.Tensor, noise: tf.random.Generator) -> tf.Tensor:
    """Each image shifted by whole pixels, up to s/8 each way, the uncovered edge black."""
    size = images.shape[1]
    shift = int(size * TRANSLATION_RATIO + 0.5)
    batch = tf.shape(images)[0]
    padded = tf.pad(images, [[0, 0], [shift, shift], [shift, shift], [0, 0]], constant_values=BACKGROUND)
    offsets = noise.uniform([2, batch], minval=0, maxval=2 * shift + 1, dtype=tf.int32)
    rows = offsets[0][:, None] + tf.range(size)[None, :]
    columns = offsets[1][:, None] + tf.range(size)[None, :]
    shifted = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(shifted, columns, axis=2, batch_dims=1)


def cutout(images: tf.Tensor, noise: tf.random.Generator) -> tf.Tensor:
    """A black square of side s/2 at a random place in each image (it may reach past the edge)."""
    size = images.shape[1]
    half = int(size * CUTOUT_RATIO + 0.5) // 2
    batch = tf.shape(images)[0]
    centres = noise.uniform([2, batch], minval=0, maxval=size, dtype=tf.int32)
    rows = tf.range(size)[None, :, None] - centres[0][:, None, None]
    columns = tf.range(size)[None, None, :] - centres[1][:, None, None]
    inside = (rows >= -half) & (rows < half) & (columns >= -half) & (columns < half)
    return tf.where(inside[..., None], tf.cast(BACKGROUND, images.dtype), images)


AUGMENTATIONS = {"translation": translation, "cutout": cutout}
