"""Installing from the locks (#25): a fresh virtual environment from `requirements.lock` with
`--require-hashes` (what the images do) against the same from `requirements.txt`, which pip must
resolve (what `make` did before the locks), both with pip's cache warm; and what leaving the
test, browser and lint tools out of the images saves (the runtime lock's environment against the
development lock's). Also how long `make lock` takes to compile the three locks."""

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 2


def _install(requirements: str, *, hashes: bool) -> tuple[float, int]:
    """Seconds to make a venv and install into it, and its size in bytes."""
    with tempfile.TemporaryDirectory(prefix="bench-install-") as folder:
        venv = Path(folder) / "venv"
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-compile"]
        subprocess.run([*pip, *(["--require-hashes"] if hashes else []), "-r", str(ROOT / requirements)], check=True)
        seconds = time.perf_counter() - started
        size = sum(path.stat().st_size for path in venv.rglob("*") if path.is_file() and not path.is_symlink())
    return seconds, size


def _lock_seconds() -> float | None:
    uv = Path(sys.executable).parent / "uv"
    if not uv.exists():
        return None
    venv = Path(sys.executable).parent.parent
    with tempfile.TemporaryDirectory(prefix="bench-lock-") as folder:
        for name in ("Makefile", "requirements.txt", "requirements-gpu.txt", "requirements-dev.txt"):
            shutil.copy(ROOT / name, folder)
        started = time.perf_counter()
        # -o: the venv counts as installed (the rule would otherwise reinstall it); no lock there
        # yet, so uv resolves everything afresh.
        subprocess.run(["make", "-s", "lock", f"VENV={venv}", "-o", f"{venv}/.installed"], cwd=folder, check=True)
        assert all((Path(folder) / name).stat().st_size for name in ("requirements.lock", "requirements-dev.lock"))
        return time.perf_counter() - started


def main() -> dict:
    print("warming pip's cache (not timed) ...")
    _install("requirements-dev.lock", hashes=True)
    resolved, locked, dev = [], [], []
    for round_number in range(ROUNDS):
        resolved.append(_install("requirements.txt", hashes=False))
        locked.append(_install("requirements.lock", hashes=True))
        dev.append(_install("requirements-dev.lock", hashes=True))
        print(
            f"round {round_number + 1}: resolve requirements.txt {resolved[-1][0]:.1f} s, "
            f"requirements.lock --require-hashes {locked[-1][0]:.1f} s, requirements-dev.lock {dev[-1][0]:.1f} s"
        )
    best = {name: min(runs) for name, runs in (("resolved", resolved), ("locked", locked), ("dev", dev))}
    figures = {
        "resolve_s": best["resolved"][0],
        "locked_s": best["locked"][0],
        "locked_vs_resolve": best["locked"][0] / best["resolved"][0],
        "runtime_gb": best["locked"][1] / 1e9,
        "dev_gb": best["dev"][1] / 1e9,
        "runtime_vs_dev_size": best["locked"][1] / best["dev"][1],
    }
    print(
        f"fresh venv, best of {ROUNDS}: requirements.lock with hashes {figures['locked_s']:.1f} s = "
        f"{figures['locked_vs_resolve']:.2f}x the resolving install of requirements.txt ({figures['resolve_s']:.1f} s)"
    )
    print(
        f"runtime environment {figures['runtime_gb']:.2f} GB = {figures['runtime_vs_dev_size']:.2f}x the "
        f"development one ({figures['dev_gb']:.2f} GB): what the images no longer ship"
    )
    lock_seconds = _lock_seconds()
    if lock_seconds is not None:
        figures["make_lock_s"] = lock_seconds
        print(f"make lock (three locks, uv's cache warm, from scratch): {lock_seconds:.1f} s")
    return figures


if __name__ == "__main__":
    main()
