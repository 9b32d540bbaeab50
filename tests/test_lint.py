"""Static checks of the code base (ruff's pyflakes rules, configured in pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_unused_imports_undefined_names_or_dead_assignments():
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "ionspike", "tests",
                          "benchmarks", "docs"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
