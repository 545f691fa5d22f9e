"""What the machine offers training: GPUs with memory growth, the distribution strategy, fast bf16.

TensorFlow is imported inside the functions, so the web process can import this module cheaply.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tensorflow as tf

# Tensor cores with bf16 arrived with Ampere (compute capability 8.0).
BF16_GPU_COMPUTE_CAPABILITY = (8, 0)
# Either gives the CPU native bf16 dot products that oneDNN uses for convolutions.
BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


def cpu_flags(cpuinfo_path: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo is not there."""
    try:
        text = cpuinfo_path.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


# The extensions that decide how fast TensorFlow's CPU kernels (oneDNN) train: 2-core machines of one
# kind differ tenfold between AVX2 only and AVX-512 with bf16 or AMX.
VECTOR_EXTENSIONS = (("avx2", "AVX2"), ("avx512f", "AVX-512F"), ("avx512_bf16", "AVX512-BF16"), ("amx_tile", "AMX"))


def cpu_model(cpuinfo_path: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name (Linux), "unknown CPU" where /proc/cpuinfo does not say."""
    try:
        text = cpuinfo_path.read_text()
    except OSError:
        return "unknown CPU"
    for line in text.splitlines():
        if line.startswith("model name"):
            return " ".join(line.partition(":")[2].split())
    return "unknown CPU"


def cpu_summary(cpuinfo_path: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU and its vector extensions, e.g. "AMD EPYC (AVX2, AVX-512F)": what figures from two
    machines need beside them to be read side by side."""
    flags = cpu_flags(cpuinfo_path)
    extensions = [name for flag, name in VECTOR_EXTENSIONS if flag in flags] or ["no AVX2"]
    return f"{cpu_model(cpuinfo_path)} ({', '.join(extensions)})"


def gpu_compute_capabilities() -> list[tuple[int, int]]:
    """Compute capability of every visible GPU, (0, 0) where TensorFlow does not say."""
    import tensorflow as tf

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        capabilities.append(tuple(details.get("compute_capability", (0, 0))))
    return capabilities


@functools.cache
def bf16_is_fast() -> bool:
    """Whether bf16 arithmetic beats float32 on the device training would run on.

    With GPUs visible, training runs on them, so they decide (every one needs compute capability
    8.0 or more): a V100 in an AMX server would still be slower in bf16. Without GPUs, the CPU's
    flags decide.
    """
    capabilities = gpu_compute_capabilities()
    if capabilities:
        return all(capability >= BF16_GPU_COMPUTE_CAPABILITY for capability in capabilities)
    return bool(cpu_flags() & BF16_CPU_FLAGS)


def device_summary(mixed_precision: str) -> str:
    """Where and in what precision training runs, for the job's log: "2 GPUs (compute capability
    8.0), bf16" or "AMD EPYC (AVX2), float32"."""
    capabilities = gpu_compute_capabilities()
    if capabilities:
        listed = ", ".join(sorted({f"{major}.{minor}" for major, minor in capabilities}))
        device = f"{len(capabilities)} GPU{'s' if len(capabilities) > 1 else ''} (compute capability {listed})"
    else:
        device = cpu_summary()
    return f"{device}, {'bf16' if mixed_precision_enabled(mixed_precision) else 'float32'}"


def mixed_precision_enabled(setting: str) -> bool:
    """Resolve a config's ``mixed_precision`` ("auto" | "on" | "off"): "auto" means on where bf16 is fast."""
    if setting == "on":
        return True
    if setting == "off":
        return False
    if setting == "auto":
        return bf16_is_fast()
    raise ValueError(f'mixed_precision must be "auto", "on" or "off", got {setting!r}')


def configure_gpus() -> int:
    """Let every visible GPU grow its memory as needed; return how many GPUs there are.

    Without memory growth TensorFlow takes a whole GPU's memory at start-up, which leaves nothing
    for a second worker process or a bank fill sharing the card.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        # RuntimeError: the runtime is already initialised (an earlier job in this worker) and growth was set then.
        with contextlib.suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)
    return len(gpus)


def distribution_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy across the GPUs when there is more than one, else the default (one device).

    The training loop runs the same code either way: the default strategy's ``scope``, ``run`` and
    ``reduce`` are pass-throughs.
    """
    import tensorflow as tf

    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
