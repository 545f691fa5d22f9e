"""The tiers hold: a fast-tier test cannot start a process or ask for a system fixture, and no
test module outside tests/system reaches for one."""

import re
import subprocess
import sys

import pytest

from tests.conftest import SYSTEM_TIER, StartedAProcess
from tests.support import REPO

SYSTEM_ONLY = re.compile(r"\b(subprocess|Popen|sync_playwright|live_server|start_worker|start_process|service_env)\b")


def test_a_fast_tier_test_that_starts_python_fails_with_where_it_belongs():
    with pytest.raises(StartedAProcess, match="tests/system"):
        subprocess.run([sys.executable, "-c", "pass"], check=True)


@pytest.mark.parametrize("fixture", ["start_worker", "start_process", "service_env", "browser", "page"])
def test_system_fixtures_do_not_exist_in_the_fast_tier(request, fixture):
    with pytest.raises(pytest.FixtureLookupError):
        request.getfixturevalue(fixture)


def test_no_fast_tier_module_reaches_for_processes_or_a_browser():
    offenders = {
        str(path.relative_to(REPO)): sorted(set(SYSTEM_ONLY.findall(path.read_text())))
        for path in (REPO / "tests").rglob("test_*.py")
        if SYSTEM_TIER not in path.parents and path.name != "test_tiers.py" and SYSTEM_ONLY.search(path.read_text())
    }
    assert offenders == {}, "move these tests to tests/system"
