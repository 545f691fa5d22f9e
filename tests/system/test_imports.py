"""generator.ml loads no Django, and its slicing and image-bank modules no TensorFlow, in a
fresh interpreter (this test process already has Django loaded by pytest-django). The import
contracts (pyproject.toml) check the same statically; this checks what really gets imported."""

import subprocess
import sys

from tests.support import REPO


def _loaded_after_importing(modules: str) -> str:
    code = f"import sys, {modules}; print(sorted(m for m in ('django', 'tensorflow') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, encoding="utf-8", check=True, cwd=REPO)
    return result.stdout.strip()


def test_the_ml_package_does_not_import_django():
    assert "django" not in _loaded_after_importing("generator.ml.volumes, generator.ml.alignment")


def test_slicing_modules_import_neither_django_nor_tensorflow():
    assert _loaded_after_importing("generator.ml.grid, generator.ml.slicing, generator.ml.streaming") == "[]"


def test_image_bank_modules_import_neither_django_nor_tensorflow():
    assert _loaded_after_importing("generator.ml.rendering, generator.ml.screening, generator.ml.image_import") == "[]"
