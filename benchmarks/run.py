"""Run every benchmark (benchmarks/bench_*.py) and print its figures: `make bench`.

Each module has a ``main() -> dict`` that prints as it goes and returns its figures. Figures are
ratios against a baseline timed in the same run, since these machines are shared and noisy.
Pass module names to run only some: ``python benchmarks/run.py bench_jobs``.
"""

import importlib
import platform
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(names: list[str]) -> int:
    # bench_*.py, then the load test against the real stack (load_readers.py: minutes long).
    names = names or [*sorted(path.stem for path in (ROOT / "benchmarks").glob("bench_*.py")), "load_readers"]
    print(f"SynthRead benchmarks, {date.today()}, {platform.node()}, {platform.processor() or platform.machine()}")
    failed = []
    for name in names:
        print(f"\n=== {name}")
        started = time.perf_counter()
        try:
            importlib.import_module(f"benchmarks.{name}").main()
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            failed.append(name)
            print(f"FAILED: {type(exc).__name__}: {exc}")
        print(f"({name} took {time.perf_counter() - started:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
