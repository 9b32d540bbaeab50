"""The model reference (docs/model.md) stays true to the code it describes."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_generated_parameter_tables_are_current():
    # docs/tables.py renders §4's tables from the preset files and the field metadata
    run = subprocess.run([sys.executable, str(ROOT / "docs" / "tables.py"), "--check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_product_cites_its_own_reference_not_the_team_notes():
    # users never see the team's research note; the package, its tests and README cite docs/model.md
    cited = []
    for path in [*ROOT.joinpath("ionspike").rglob("*.py"), *ROOT.joinpath("ionspike").rglob("*.toml"),
                 *ROOT.joinpath("tests").glob("*.py"), ROOT / "README.md"]:
        if path.name == "test_docs.py":
            continue
        if "physics.md" in path.read_text(encoding="utf-8"):
            cited.append(str(path.relative_to(ROOT)))
    assert cited == []


def test_every_section_the_code_cites_exists():
    text = (ROOT / "docs" / "model.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)[ .]", text, flags=re.M))
    missing = []
    for path in [*ROOT.joinpath("ionspike").rglob("*.py"), *ROOT.joinpath("ionspike").rglob("*.toml")]:
        for ref in re.findall(r"docs/model\.md §(\d+(?:\.\d+)?)", path.read_text(encoding="utf-8")):
            if ref not in headings:
                missing.append(f"{path.relative_to(ROOT)}: §{ref}")
    assert missing == [], missing
