"""The DCGAN against the paper's Methods paragraph, its config and presets, and the hardware choices."""

import dataclasses

import keras
import numpy as np
import pytest

from generator.ml import hardware
from generator.ml.dcgan import (
    PRESETS,
    TrainingConfig,
    build_discriminator,
    build_generator,
    build_optimizer,
    dtype_policy,
    preset_config,
)

# Keras 3 converts its variables with np.array(x, copy=False), which NumPy 2 warns about; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# Written out from the Methods paragraph (and DESIGN.md's reading of it), not from the code: for
# s = 64, a Dense projection of z to 4 × 4 × 256, batch norm and ReLU; 5×5 stride-2 transposed
# convolutions to 128, 64, 32 channels, each with batch norm and ReLU; a last one to 1 channel, tanh.
# Rows: (layer, filters or units, kernel, strides, activation, output shape without the batch).
GENERATOR_64 = [
    ("Dense", 4 * 4 * 256, None, None, "linear", (4096,)),
    ("Reshape", None, None, None, None, (4, 4, 256)),
    ("BatchNormalization", None, None, None, None, (4, 4, 256)),
    ("ReLU", None, None, None, None, (4, 4, 256)),
    ("Conv2DTranspose", 128, (5, 5), (2, 2), "linear", (8, 8, 128)),
    ("BatchNormalization", None, None, None, None, (8, 8, 128)),
    ("ReLU", None, None, None, None, (8, 8, 128)),
    ("Conv2DTranspose", 64, (5, 5), (2, 2), "linear", (16, 16, 64)),
    ("BatchNormalization", None, None, None, None, (16, 16, 64)),
    ("ReLU", None, None, None, None, (16, 16, 64)),
    ("Conv2DTranspose", 32, (5, 5), (2, 2), "linear", (32, 32, 32)),
    ("BatchNormalization", None, None, None, None, (32, 32, 32)),
    ("ReLU", None, None, None, None, (32, 32, 32)),
    ("Conv2DTranspose", 1, (5, 5), (2, 2), "tanh", (64, 64, 1)),
]

# 5×5 stride-2 convolutions with 32, 64, 128, 256 filters, batch norm on each, leaky ReLU 0.2;
# no batch norm and no activation on the output logit.
DISCRIMINATOR_64 = [
    ("Conv2D", 32, (5, 5), (2, 2), "linear", (32, 32, 32)),
    ("BatchNormalization", None, None, None, None, (32, 32, 32)),
    ("LeakyReLU", 0.2, None, None, None, (32, 32, 32)),
    ("Conv2D", 64, (5, 5), (2, 2), "linear", (16, 16, 64)),
    ("BatchNormalization", None, None, None, None, (16, 16, 64)),
    ("LeakyReLU", 0.2, None, None, None, (16, 16, 64)),
    ("Conv2D", 128, (5, 5), (2, 2), "linear", (8, 8, 128)),
    ("BatchNormalization", None, None, None, None, (8, 8, 128)),
    ("LeakyReLU", 0.2, None, None, None, (8, 8, 128)),
    ("Conv2D", 256, (5, 5), (2, 2), "linear", (4, 4, 256)),
    ("BatchNormalization", None, None, None, None, (4, 4, 256)),
    ("LeakyReLU", 0.2, None, None, None, (4, 4, 256)),
    ("Flatten", None, None, None, None, (4096,)),
    ("Dense", 1, None, None, "linear", (1,)),
]


def describe(model: keras.Model) -> list[tuple]:
    """The model's layers in the rows above (the input layer left out)."""
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        shape = tuple(layer.output.shape[1:])
        activation = getattr(layer, "activation", None)
        activation_name = activation.__name__ if activation is not None else None
        if isinstance(layer, keras.layers.BatchNormalization):
            rows.append(("BatchNormalization", None, None, None, None, shape))
        elif isinstance(layer, keras.layers.Conv2D | keras.layers.Conv2DTranspose):
            kind = "Conv2DTranspose" if isinstance(layer, keras.layers.Conv2DTranspose) else "Conv2D"
            assert layer.padding == "same"
            rows.append((kind, layer.filters, layer.kernel_size, layer.strides, activation_name, shape))
        elif isinstance(layer, keras.layers.Dense):
            rows.append(("Dense", layer.units, None, None, activation_name, shape))
        elif isinstance(layer, keras.layers.LeakyReLU):
            rows.append(("LeakyReLU", pytest.approx(layer.negative_slope), None, None, None, shape))
        else:
            rows.append((type(layer).__name__, None, None, None, None, shape))
    return rows


def config(size: int = 64, **overrides) -> TrainingConfig:
    return TrainingConfig(**{"size": size, "steps": 10, "mixed_precision": "off", **overrides})


def test_layers_read_like_the_methods_paragraph():
    assert describe(build_generator(config())) == GENERATOR_64
    assert describe(build_discriminator(config())) == DISCRIMINATOR_64


@pytest.mark.parametrize("size, base", [(128, 8), (256, 16)])
def test_projection_is_s_over_16_squared_by_256(size, base):
    generator = build_generator(config(size))
    dense, reshape = generator.layers[1], generator.layers[2]
    assert dense.units == base * base * 256
    assert tuple(reshape.output.shape[1:]) == (base, base, 256)
    assert tuple(generator.output.shape[1:]) == (size, size, 1)
    assert tuple(build_discriminator(config(size)).output.shape[1:]) == (1,)


@pytest.mark.parametrize("size", [64, 128])
def test_generator_output_has_the_preset_shape_and_range(size):
    generator = build_generator(config(size))
    z = np.random.default_rng(0).uniform(-1, 1, (4, 100)).astype(np.float32)
    for training in (False, True):
        images = np.asarray(generator(z, training=training))
        assert images.shape == (4, size, size, 1)
        assert images.dtype == np.float32
        assert images.min() >= -1.0 and images.max() <= 1.0


def test_radford_variant_has_no_batch_norm_after_the_first_convolution():
    rows = describe(build_discriminator(config(discriminator_input_batchnorm=False)))
    assert rows[0][0] == "Conv2D" and rows[1][0] == "LeakyReLU"
    assert [row[0] for row in rows].count("BatchNormalization") == 3
    assert build_discriminator(config(discriminator_input_batchnorm=False)).layers[1].use_bias


def test_a_narrower_net_scales_every_layer_and_keeps_the_shapes():
    narrow = describe(build_generator(config(network_width=0.5)))
    assert [row[1] for row in narrow if row[0] in ("Dense", "Conv2DTranspose")] == [4 * 4 * 128, 64, 32, 16, 1]
    assert narrow[-1][-1] == (64, 64, 1)
    discriminator = build_discriminator(config(network_width=0.5))
    assert [layer.filters for layer in discriminator.layers if isinstance(layer, keras.layers.Conv2D)] == [
        16,
        32,
        64,
        128,
    ]
    with pytest.raises(ValueError, match="network_width"):
        config(network_width=0.01)  # 32 × 0.01 leaves the first layer no filter


def test_the_minibatch_spread_tells_a_collapsed_batch_from_a_varied_one():
    import tensorflow as tf

    from generator.ml.layers import minibatch_stddev_class

    spread = minibatch_stddev_class()()
    varied = np.random.default_rng(0).normal(size=(8, 2, 2, 3)).astype(np.float32)
    appended = spread(tf.constant(varied)).numpy()
    assert appended.shape == (8, 2, 2, 4) and np.array_equal(appended[..., :3], varied)
    # Groups of four: images 0, 2, 4, 6 and images 1, 3, 5, 7 (image i in group i mod 2).
    for member in range(2):
        expected = varied[member::2].std(axis=0).mean()
        assert np.allclose(appended[member::2, :, :, 3], expected, atol=1e-5)
    collapsed = spread(tf.constant(np.repeat(varied[:1], 8, axis=0))).numpy()[..., 3]
    assert collapsed.max() < 1e-3 < appended[..., 3].min()
    rows = describe(build_discriminator(config(discriminator_minibatch_stddev=True)))
    assert [row[0] for row in rows][-3:] == ["MinibatchStddev", "Flatten", "Dense"]
    with pytest.raises(ValueError, match="divisible by 4"):
        config(discriminator_minibatch_stddev=True, batch_size=6)


def test_the_mode_seeking_term_punishes_alike_images_and_its_gradient_pulls_them_apart():
    import tensorflow as tf

    from generator.ml.training.gan import MODE_SEEKING_EPSILON, mode_seeking_term

    rng = np.random.default_rng(0)
    z = rng.uniform(-1, 1, (8, 100)).astype(np.float32)
    varied = rng.uniform(-1, 1, (8, 4, 4, 1)).astype(np.float32)
    # Pairs (0, 4), (1, 5), (2, 6), (3, 7): first half against second half, as the batch is drawn.
    latent_gap = np.abs(z[:4] - z[4:]).mean(axis=1)
    image_gap = np.abs(varied[:4] - varied[4:]).mean(axis=(1, 2, 3))
    expected = (latent_gap / (image_gap + MODE_SEEKING_EPSILON)).mean()
    assert float(mode_seeking_term(tf.constant(z), tf.constant(varied))) == pytest.approx(expected, rel=1e-5)
    alike = np.repeat(varied[:1], 8, axis=0)
    assert float(mode_seeking_term(tf.constant(z), tf.constant(alike))) > 1000 * expected  # one image: huge
    images = tf.Variable(varied)
    with tf.GradientTape() as tape:
        term = mode_seeking_term(tf.constant(z), images)
    descended = varied - 0.01 * tape.gradient(term, images).numpy()
    assert (np.abs(descended[:4] - descended[4:]).mean(axis=(1, 2, 3)) > image_gap).all()  # pairs pushed apart


def test_the_generator_update_weighs_mode_seeking_in_and_reports_the_adversarial_loss():
    from generator.ml.training.gan import GAN

    losses, weights = [], []
    for weight in (0.0, 1.0):
        keras.utils.set_random_seed(0)
        gan = GAN(config(network_width=0.25, batch_size=8, mode_seeking_weight=weight))
        losses.append(float(gan.generator_update(8)))
        weights.append(gan.generator.get_weights())
    assert losses[0] == pytest.approx(losses[1])  # the same start, noise and adversarial loss
    assert not all(np.allclose(a, b) for a, b in zip(*weights, strict=True))  # but another step
    with pytest.raises(ValueError, match="mode_seeking_weight"):
        config(mode_seeking_weight=-1)


def test_initialisation_and_optimiser_follow_dcgan():
    generator, discriminator = build_generator(config()), build_discriminator(config())
    for layer in [*generator.layers, *discriminator.layers]:
        if isinstance(layer, keras.layers.Conv2D | keras.layers.Conv2DTranspose | keras.layers.Dense):
            kernel = np.asarray(layer.kernel)
            if kernel.size >= 2000:  # enough draws for the sample deviation to be within 10 %
                assert kernel.std() == pytest.approx(0.02, rel=0.1), layer.name
            assert abs(kernel.mean()) < 0.01, layer.name
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma = np.asarray(layer.gamma)
            assert abs(gamma.mean() - 1.0) < 0.02 and 0.0 < gamma.std() < 0.04, layer.name
    optimizer = build_optimizer(config())
    assert float(optimizer.learning_rate) == pytest.approx(2e-4)
    assert float(optimizer.beta_1) == pytest.approx(0.5)


def test_mixed_precision_keeps_outputs_float32_and_does_not_leak():
    keras.mixed_precision.set_global_policy("float32")
    generator = build_generator(config(mixed_precision="on"))
    discriminator = build_discriminator(config(mixed_precision="on"))
    assert keras.mixed_precision.global_policy().name == "float32"
    assert generator.get_layer("deconv1").compute_dtype == "bfloat16"
    assert generator.get_layer("deconv1").variable_dtype == "float32"
    assert generator.layers[-1].dtype_policy.name == "float32"
    assert discriminator.layers[-1].dtype_policy.name == "float32"
    z = np.zeros((2, 100), np.float32)
    images = generator(z, training=False)
    assert images.dtype == "float32"
    assert discriminator(images, training=False).dtype == "float32"
    with pytest.raises(RuntimeError), dtype_policy(config(mixed_precision="on")):
        raise RuntimeError("building failed")
    assert keras.mixed_precision.global_policy().name == "float32"


def test_auto_precision_follows_the_hardware():
    policy = "mixed_bfloat16" if hardware.bf16_is_fast() else "float32"
    with dtype_policy(config(mixed_precision="auto")) as chosen:
        assert chosen == policy


def test_config_needs_exactly_one_budget_and_round_trips():
    with pytest.raises(ValueError, match="exactly one budget"):
        TrainingConfig(size=64)
    with pytest.raises(ValueError, match="exactly one budget"):
        TrainingConfig(size=64, epochs=1, steps=1)
    with pytest.raises(ValueError, match="exactly one budget"):
        TrainingConfig(size=64, steps=1, minutes=2)
    with pytest.raises(ValueError, match="positive"):
        TrainingConfig(size=64, minutes=0)
    assert TrainingConfig(size=64, minutes=0.5).total_steps(steps_per_epoch=10) is None  # the machine decides
    with pytest.raises(ValueError, match="size"):
        TrainingConfig(size=96, steps=1)
    with pytest.raises(ValueError):
        TrainingConfig(size=64, steps=1, generator_steps_per_discriminator_step=3)
    with pytest.raises(ValueError):
        TrainingConfig(size=64, steps=1, mixed_precision="fp16")
    original = TrainingConfig(size=128, epochs=2, label_smoothing=0.1, generator_steps_per_discriminator_step=2)
    assert TrainingConfig.from_dict(original.to_dict()) == original
    with pytest.raises(ValueError, match="unknown"):
        TrainingConfig.from_dict({**original.to_dict(), "gf_dim": 32})
    assert original.total_steps(steps_per_epoch=758) == 1516


def test_presets_and_budget_overrides():
    assert preset_config("paper-256") == TrainingConfig(size=256, epochs=35)
    assert preset_config("paper-128") == TrainingConfig(size=128, epochs=35)
    assert preset_config("paper-256").discriminator_input_batchnorm  # the paper's text
    quick = preset_config("quick-64")
    assert quick.size == 64 and (quick.epochs, quick.steps) == (None, None)
    assert quick.minutes == PRESETS["quick-64"]["minutes"]  # small presets train for minutes, on any machine
    assert not quick.discriminator_input_batchnorm  # Radford's variant: see the preset's comment
    assert 2 <= quick.minutes <= 5  # within `make demo`'s ten minutes
    assert (preset_config("quick-64", steps=30).steps, preset_config("quick-64", steps=30).minutes) == (30, None)
    assert preset_config("paper-128", minutes=90).epochs is None
    assert (quick.batch_size, quick.learning_rate, quick.beta_1, quick.z_dim) == (64, 2e-4, 0.5, 100)
    extended = preset_config("paper-256", steps=10)
    assert (extended.epochs, extended.steps) == (None, 10)
    assert dataclasses.replace(preset_config("quick-64", epochs=3), seed=5).epochs == 3
    modern = preset_config("modern-64")  # the paper's losses and rates; see the preset's comment
    assert (modern.size, modern.minutes, modern.learning_rate, modern.discriminator_learning_rate) == (
        64,
        3,
        2e-4,
        None,
    )
    assert (modern.network_width, modern.discriminator_minibatch_stddev, modern.generator_ema_decay) == (
        0.5,
        True,
        0.999,
    )
    assert modern.mode_seeking_weight == 1.0  # Mao et al.'s weight
    with pytest.raises(ValueError, match="unknown preset"):
        preset_config("paper-512")


def test_hardware_reads_cpu_flags_and_picks_one_device_here(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC  7B13\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n")
    assert "avx512_bf16" in hardware.cpu_flags(cpuinfo)
    assert hardware.cpu_summary(cpuinfo) == "AMD EPYC 7B13 (AVX2, AVX-512F, AVX512-BF16)"
    assert hardware.cpu_summary(tmp_path / "missing") == "unknown CPU (no AVX2)"
    assert hardware.cpu_flags(tmp_path / "missing") == frozenset()
    assert hardware.mixed_precision_enabled("on") and not hardware.mixed_precision_enabled("off")
    with pytest.raises(ValueError):
        hardware.mixed_precision_enabled("bf16")
    import tensorflow as tf

    visible_gpus = hardware.configure_gpus()
    strategy = hardware.distribution_strategy()
    if visible_gpus <= 1:
        assert strategy is tf.distribute.get_strategy()
    else:
        assert isinstance(strategy, tf.distribute.MirroredStrategy)
