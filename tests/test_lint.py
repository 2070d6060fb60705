"""The linter's rules (pyproject.toml, [tool.ruff]) hold for the whole tree, in the fast tier."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_ruff_is_clean():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(REPO)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
