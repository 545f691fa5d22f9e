"""What software produced a result: the code's version, the Python and the installed distributions."""

import os
import platform
import subprocess
from importlib import metadata

from django.conf import settings


def code_version() -> str:
    """The code's git commit (or SYNTHREAD_CODE_VERSION where the image has no .git)."""
    if os.environ.get("SYNTHREAD_CODE_VERSION"):
        return os.environ["SYNTHREAD_CODE_VERSION"]
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=settings.BASE_DIR, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def installed_packages() -> str:
    """Every installed distribution as ``name==version``, sorted case-insensitively, after a
    comment line naming the Python and the platform: what an auditor installs to re-run the
    analysis with the same numerical libraries."""
    versions: dict[str, str] = {}
    for distribution in metadata.distributions():
        name = distribution.metadata["Name"]
        # A folder on sys.path twice lists its distributions twice; the first is the one imported.
        if name and name.lower() not in versions:
            versions[name.lower()] = f"{name}=={distribution.version}"
    header = f"# Python {platform.python_version()} ({platform.python_implementation()}) on {platform.platform()}"
    return "\n".join([header, *(versions[key] for key in sorted(versions))]) + "\n"
