"""The paper's DCGAN (Kazuhiro et al. 2018, Methods, after Radford et al.): networks, config and presets.

Read against the Methods paragraph "Generation of Artificial Brain Images Using Deep Convolutional GAN":

- "a fully connected layer projecting input of a 100-dimensional uniform distribution": z ~ U(−1, 1)^100,
  a Dense layer reshaped to s/16 × s/16 × 256.
- "4 fractionally strided convolutions with filter sizes of 256, 128, 64, and 32 and a kernel size of
  5 × 5": read as in the common TF1 DCGAN (carpedm20/DCGAN-tensorflow, gf_dim = 32) the paper built
  on, where 256 is the projection's depth and the four 5×5 stride-2 transposed convolutions go to
  128, 64, 32 and 1 channel(s). Four doublings take s/16 to s.
- "ReLU ... except for the output layer, which used the tanh function. Batch normalization was
  performed in each layer": batch norm + ReLU after the projection and each hidden transposed
  convolution; the output layer is tanh without batch norm (as in every DCGAN: a normalised output
  layer cannot reach the data's intensity range).
- Discriminator: "leaky ReLU ... slope of leak of 0.2. Batch normalization was performed except for
  the output layer": 5×5 stride-2 convolutions with 32, 64, 128, 256 filters, each with batch norm
  and leaky ReLU 0.2, then a Dense(1) logit. ``discriminator_input_batchnorm=False`` gives Radford's
  variant, without batch norm on the first convolution.

Choices the paper leaves open, taken from the DCGAN references: kernels ~ N(0, 0.02); batch norm
gamma ~ N(1, 0.02) (Radford's reference code and the TF1 DCGAN initialise the scale that way, so
it starts near the identity), beta 0, momentum 0.9 and epsilon 1e-5 (the TF1 DCGAN's values;
Keras's 0.99 lets the generator's moving statistics, used for sampling, lag far behind early
training); no bias on a convolution followed by batch norm (batch norm's beta makes it redundant).
Batch norm runs on TensorFlow's fused kernel (``layers.fused_batch_normalization_class``: Keras's layer,
same weights and function): Keras 3's own is built from separate ops and upcasts bf16, and took a
third of a CPU training step.

Mixed precision: with ``mixed_bfloat16`` the layers compute in bf16 and keep float32 weights; the
generator's tanh output and the discriminator's logit stay float32, so images and losses are float32.

TensorFlow and Keras are imported inside the functions, so the web process can import the config.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from generator.ml.layers import MINIBATCH_STDDEV_GROUP, fused_batch_normalization_class, minibatch_stddev_class

if TYPE_CHECKING:
    import keras

SIZES = (64, 128, 256)
PROJECTION_DEPTH = 256
GENERATOR_FILTERS = (128, 64, 32)  # hidden transposed convolutions; the output layer has 1 channel
DISCRIMINATOR_FILTERS = (32, 64, 128, 256)
KERNEL_SIZE = 5
STRIDES = 2
LEAKY_RELU_SLOPE = 0.2
INIT_STDDEV = 0.02
BATCHNORM_MOMENTUM = 0.9
BATCHNORM_EPSILON = 1e-5
MIXED_PRECISION_SETTINGS = ("auto", "on", "off")
BUDGET_FIELDS = ("epochs", "steps", "minutes")
DIFF_AUGMENT_POLICIES = ("translation", "cutout")
MODE_SEEKING_WEIGHT_MAX = 10.0  # a bound on the option, ten times the weight Mao et al. used (1)
METRICS_SETTINGS = ("epoch", "end", "off")  # when generator.ml.metrics measures the run; see TrainingConfig


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that defines a training run; ``to_dict`` goes into the run's record.

    Exactly one budget: ``epochs`` (passes over the slice grid), ``steps`` (discriminator steps) or
    ``minutes`` (of training, counted over every resume: a resumed run gets the time it had left).
    ``metrics_every``: when the loop computes the quality metrics (SWD, MS-SSIM diversity;
    ``generator.ml.metrics``), at the end of every epoch and of the run ("epoch"), at the end of the
    run only ("end"), or never ("off").
    """

    size: int
    z_dim: int = 100
    batch_size: int = 64
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    # The TF1 DCGAN ran the generator twice per discriminator step, so D does not win too early.
    generator_steps_per_discriminator_step: int = 1
    # One-sided: real labels become 1 − label_smoothing, fake labels stay 0.
    label_smoothing: float = 0.0
    discriminator_input_batchnorm: bool = True
    mixed_precision: str = "auto"
    metrics_every: str = "end"
    # Stabilisers beyond the paper (off by default, so the paper presets stay literal; see PRESETS):
    # DiffAugment policies applied to every image the discriminator sees, e.g. "translation,cutout";
    diff_augment: str = ""
    # the decay of an exponential moving average of the generator's weights (0: none), which then
    # draws the samples, is measured and fills the bank;
    generator_ema_decay: float = 0.0
    # the discriminator's own learning rate (None: ``learning_rate``), for two time-scale updates.
    discriminator_learning_rate: float | None = None
    # a minibatch standard deviation feature before the discriminator's logit (Karras et al. 2018);
    discriminator_minibatch_stddev: bool = False
    # Every layer's filters × this (the paper's net: 1); a narrower net takes more steps per minute.
    network_width: float = 1.0
    # the weight of a mode-seeking term in the generator's loss (Mao et al. 2019; 0: none), which
    # rewards two latent vectors for drawing two different images.
    mode_seeking_weight: float = 0.0
    seed: int = 0
    epochs: int | None = None
    steps: int | None = None
    minutes: float | None = None

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ValueError(f"size must be one of {SIZES}, got {self.size}")
        self._check_budget()
        self._check_options()
        self._check_stabilisers()

    def _check_budget(self) -> None:
        budgets = {name: getattr(self, name) for name in BUDGET_FIELDS if getattr(self, name) is not None}
        if len(budgets) != 1:
            given = ", ".join(f"{name}={getattr(self, name)}" for name in BUDGET_FIELDS)
            raise ValueError(f"give exactly one budget, epochs, steps or minutes (got {given})")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"the budget in minutes must be positive, got {self.minutes}")
        if self.minutes is None and next(iter(budgets.values())) < 1:
            raise ValueError(f"the budget must be at least 1, got {next(iter(budgets.values()))}")

    def _check_options(self) -> None:
        if self.generator_steps_per_discriminator_step not in (1, 2):
            raise ValueError("generator_steps_per_discriminator_step must be 1 or 2")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.mixed_precision not in MIXED_PRECISION_SETTINGS:
            raise ValueError(f"mixed_precision must be one of {MIXED_PRECISION_SETTINGS}, got {self.mixed_precision!r}")
        if self.metrics_every not in METRICS_SETTINGS:
            raise ValueError(f"metrics_every must be one of {METRICS_SETTINGS}, got {self.metrics_every!r}")
        if self.z_dim < 1 or self.batch_size < 1:
            raise ValueError("z_dim and batch_size must be positive")
        if not 0.0 < self.network_width <= 1.0 or self.filters(DISCRIMINATOR_FILTERS[0]) < 1:
            raise ValueError(f"network_width must be in (0, 1] and leave each layer a filter, got {self.network_width}")

    def _check_stabilisers(self) -> None:
        unknown_policies = set(filter(None, self.diff_augment.split(","))) - set(DIFF_AUGMENT_POLICIES)
        if unknown_policies:
            raise ValueError(f"diff_augment policies are {DIFF_AUGMENT_POLICIES}, got {sorted(unknown_policies)}")
        if not 0.0 <= self.generator_ema_decay < 1.0:
            raise ValueError(f"generator_ema_decay must be in [0, 1), got {self.generator_ema_decay}")
        if self.discriminator_minibatch_stddev and self.batch_size % MINIBATCH_STDDEV_GROUP:
            raise ValueError(f"minibatch standard deviation needs a batch size divisible by {MINIBATCH_STDDEV_GROUP}")
        if not 0.0 <= self.mode_seeking_weight <= MODE_SEEKING_WEIGHT_MAX:
            raise ValueError(
                f"mode_seeking_weight must be in [0, {MODE_SEEKING_WEIGHT_MAX}], got {self.mode_seeking_weight}"
            )

    def filters(self, paper_filters: int) -> int:
        """A layer's filters in this config's net: the paper's count × ``network_width``."""
        return round(paper_filters * self.network_width)

    def total_steps(self, steps_per_epoch: int) -> int | None:
        """The steps the budget allows; None for a budget in minutes (its steps depend on the machine)."""
        if self.epochs is not None:
            return self.epochs * steps_per_epoch
        return self.steps

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Each field's default (budgets and size have none that matter here: None)."""
        return {
            field.name: None if field.default is dataclasses.MISSING else field.default
            for field in dataclasses.fields(cls)
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown TrainingConfig fields: {sorted(unknown)}")
        return cls(**values)


# quick-64 is ours, not the paper's: a budget of minutes, not steps, since 2-core CPUs train the
# paper's net at 64² anywhere from 0.5 steps/s (an AVX2-only AMD EPYC) to 6.5 (an AVX-512 one): a
# step budget would mean a different wait, and a different model, on every machine
# (benchmarks/bench_training.py measures the rate). Four minutes fit `make demo`'s ten on the slow
# kind too; samples are recognisable axial slices from about 600 steps at batch 64. It streams slices
# of the MNI152 template and uses Radford's
# discriminator: with batch norm on the input convolution, each batch (real or fake) is normalised
# by its own statistics, so the discriminator cannot see a batch-wide intensity offset, and after
# 600 steps the generator's background was still grey (pixel std 0.38–0.47 against the real slices'
# 0.74); without it, black (std 0.75).
# Quality metrics (``metrics_every``): every preset measures once, at the end. For quick-64 that is
# a few seconds of its few minutes; a paper run can ask for "epoch" (an epoch is hours, a measurement
# at 256² under a minute) to see over its 35 epochs when training stalls.
PRESETS: dict[str, dict[str, Any]] = {
    "paper-256": {"size": 256, "epochs": 35},
    "paper-128": {"size": 128, "epochs": 35},
    "quick-64": {"size": 64, "minutes": 4, "discriminator_input_batchnorm": False},
    # Beyond the paper: quick-64's losses, rates and budget on the paper's net at half its width, with
    # three stabilisers (benchmarks/bench_generators.py; measured in benchmarks/README.md):
    # - A mode-seeking term in the generator's loss, weight 1 (Mao et al., CVPR 2019, "Mode Seeking
    #   Generative Adversarial Networks for Diverse Image Synthesis"; their weight): two latent
    #   vectors that draw alike images cost the generator. It is what makes minutes on a CPU enough:
    #   without it the preset needed about 2,000 steps to be diverse (at 600: MS-SSIM of synthetic
    #   pairs 0.2 over real pairs'), with it 300 (0.02–0.04 over, 3 seeds), and its images came
    #   closer to real ones in the same steps (SWD at 600 steps about half).
    # - A minibatch standard deviation feature in the discriminator (Karras et al., ICLR 2018,
    #   "Progressive Growing of GANs", section 3): a discriminator that judges one image at a time
    #   cannot see that all images are one. Before mode seeking, every run without it collapsed onto
    #   one brain in the pose of the template (0.88–0.95 against real pairs' 0.64), with DiffAugment,
    #   R1, spectral normalisation, two time-scale rates or twice the minutes alike.
    # - An exponential moving average of the generator's weights, decay 0.999 ramped in (Karras et
    #   al. 2018; Yazici et al., ICLR 2019, "The Unusual Effectiveness of Averaging in GAN
    #   Training"): it smooths the generator's step-to-step oscillation; the average draws the
    #   samples and fills the bank.
    # - Half the paper's filters in every layer: a quarter of the work per step, so twice the steps
    #   in the same minutes here and more where the CPU, not the step's overhead, is the limit (the
    #   AVX2-only kind).
    # Not taken, measured: DiffAugment (Zhao et al., NeurIPS 2020) made every run collapse in
    # minutes (translation alone: 0.93); two time-scale rates (Heusel et al., NeurIPS 2017) did not
    # help with it. Both stay options for longer runs.
    "modern-64": {
        "size": 64,
        "minutes": 3,
        "discriminator_input_batchnorm": False,
        "network_width": 0.5,
        "discriminator_minibatch_stddev": True,
        "generator_ema_decay": 0.999,
        "mode_seeking_weight": 1.0,
    },
}


def preset_config(name: str, **overrides: Any) -> TrainingConfig:
    """A preset's config with overrides; a budget override (epochs, steps or minutes) replaces the preset's."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets are {sorted(PRESETS)}")
    values = dict(PRESETS[name])
    if any(overrides.get(budget) is not None for budget in BUDGET_FIELDS):
        for budget in BUDGET_FIELDS:
            values.pop(budget, None)
    values.update(overrides)
    return TrainingConfig(**values)


@contextlib.contextmanager
def dtype_policy(config: TrainingConfig) -> Iterator[str]:
    """Keras's global dtype policy set for building this config's models, restored afterwards.

    Layers keep the policy they were built with, so the global one only has to hold while building.
    """
    import keras

    from generator.ml.hardware import mixed_precision_enabled

    policy = "mixed_bfloat16" if mixed_precision_enabled(config.mixed_precision) else "float32"
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield policy
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _kernel_init(seed: int) -> keras.initializers.Initializer:
    import keras

    return keras.initializers.RandomNormal(mean=0.0, stddev=INIT_STDDEV, seed=seed)


def _batch_norm(seed: int, name: str) -> keras.layers.Layer:
    import keras

    return fused_batch_normalization_class()(
        momentum=BATCHNORM_MOMENTUM,
        epsilon=BATCHNORM_EPSILON,
        gamma_initializer=keras.initializers.RandomNormal(mean=1.0, stddev=INIT_STDDEV, seed=seed),
        name=name,
    )


def build_generator(config: TrainingConfig) -> keras.Model:
    """z [b, z_dim] in (−1, 1) → images [b, s, s, 1] in (−1, 1), float32."""
    import keras
    from keras import layers

    base = config.size // 16  # four stride-2 layers double it to the output size
    with dtype_policy(config):
        z = keras.Input(shape=(config.z_dim,), name="z")
        x = layers.Dense(
            base * base * config.filters(PROJECTION_DEPTH),
            use_bias=False,
            kernel_initializer=_kernel_init(config.seed),
            name="project",
        )(z)
        x = layers.Reshape((base, base, config.filters(PROJECTION_DEPTH)), name="project_reshape")(x)
        x = _batch_norm(config.seed + 1, "project_bn")(x)
        x = layers.ReLU(name="project_relu")(x)
        for index, filters in enumerate(GENERATOR_FILTERS, start=1):
            x = layers.Conv2DTranspose(
                config.filters(filters),
                KERNEL_SIZE,
                strides=STRIDES,
                padding="same",
                use_bias=False,
                kernel_initializer=_kernel_init(config.seed + 2 * index),
                name=f"deconv{index}",
            )(x)
            x = _batch_norm(config.seed + 2 * index + 1, f"deconv{index}_bn")(x)
            x = layers.ReLU(name=f"deconv{index}_relu")(x)
        image = layers.Conv2DTranspose(
            1,
            KERNEL_SIZE,
            strides=STRIDES,
            padding="same",
            activation="tanh",
            kernel_initializer=_kernel_init(config.seed + 10),
            dtype="float32",  # images leave the network in float32 whatever the policy
            name="image",
        )(x)
    return keras.Model(z, image, name=f"generator_{config.size}")


def build_discriminator(config: TrainingConfig) -> keras.Model:
    """Images [b, s, s, 1] in [−1, 1] → one float32 logit per image (real > 0 > synthetic)."""
    import keras
    from keras import layers

    with dtype_policy(config):
        image = keras.Input(shape=(config.size, config.size, 1), name="image")
        x = image
        for index, filters in enumerate(DISCRIMINATOR_FILTERS, start=1):
            batch_normalised = index > 1 or config.discriminator_input_batchnorm
            x = layers.Conv2D(
                config.filters(filters),
                KERNEL_SIZE,
                strides=STRIDES,
                padding="same",
                use_bias=not batch_normalised,
                kernel_initializer=_kernel_init(config.seed + 100 + 2 * index),
                name=f"conv{index}",
            )(x)
            if batch_normalised:
                x = _batch_norm(config.seed + 101 + 2 * index, f"conv{index}_bn")(x)
            x = layers.LeakyReLU(negative_slope=LEAKY_RELU_SLOPE, name=f"conv{index}_lrelu")(x)
        if config.discriminator_minibatch_stddev:
            x = minibatch_stddev_class()(name="minibatch_stddev")(x)
        x = layers.Flatten(name="flatten")(x)
        logit = layers.Dense(
            1,
            kernel_initializer=_kernel_init(config.seed + 110),
            dtype="float32",  # the loss reads it in float32 whatever the policy
            name="logit",
        )(x)
    return keras.Model(image, logit, name=f"discriminator_{config.size}")


def build_optimizer(config: TrainingConfig, *, discriminator: bool = False) -> keras.optimizers.Optimizer:
    """Adam with the paper's (Radford's) learning rate and beta_1; the discriminator's may have its own rate."""
    import keras

    rate = config.learning_rate
    if discriminator and config.discriminator_learning_rate is not None:
        rate = config.discriminator_learning_rate
    return keras.optimizers.Adam(learning_rate=rate, beta_1=config.beta_1)
