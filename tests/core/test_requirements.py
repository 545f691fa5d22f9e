"""requirements-gpu.txt must stay requirements.txt with only TensorFlow's flavour swapped."""

from tests.support import REPO


def pins(name: str) -> list[str]:
    lines = (REPO / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_gpu_requirements_are_the_cpu_ones_with_cuda_tensorflow():
    cpu, gpu = pins("requirements.txt"), pins("requirements-gpu.txt")
    assert [line for line in cpu if not line.startswith("tensorflow")] == [
        line for line in gpu if not line.startswith("tensorflow")
    ]
    cpu_tf = next(line for line in cpu if line.startswith("tensorflow"))
    gpu_tf = next(line for line in gpu if line.startswith("tensorflow"))
    assert cpu_tf.startswith("tensorflow-cpu==")
    assert gpu_tf == cpu_tf.replace("tensorflow-cpu", "tensorflow[and-cuda]")


def test_every_requirement_is_pinned():
    for name in ("requirements.txt", "requirements-gpu.txt"):
        assert all("==" in line for line in pins(name)), name
