"""Plain Python and TensorFlow, never Django: usable and testable on its own.

TensorFlow is imported inside the functions that need it, so importing this package is cheap.
"""

import os

# TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX512-VNNI, AVX512-BF16,
# AVX-VNNI or AMX (tensorflow/core/util/util.cc, DefaultOneDnnPolicy); an AVX2-only CPU gets its
# Eigen kernels, which train the DCGAN at 0.58x the speed of oneDNN's AVX2 ones
# (benchmarks/bench_training.py). TensorFlow reads the switch once, when it loads, and every path
# to it here passes this package first. Set TF_ENABLE_ONEDNN_OPTS=0 to go back.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
