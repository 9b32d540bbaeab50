"""`ionspike reproduce`: the whole study into one report; resumable; checked in a real browser (issue 7)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ionspike import __version__
from ionspike import reproduce as R
from ionspike.cli import app

CLI = [sys.executable, "-m", "ionspike.cli"]


def _run(out: Path, cwd: Path, **kw):
    return subprocess.Popen([*CLI, "reproduce", "--tiny", "--out", str(out)], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, **kw)


def _links(html: str) -> list[str]:
    return [u for u in re.findall(r'(?:href|src)="([^"]+)"', html) if not u.startswith(("data:", "#", "http"))]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _browser_check(index: Path, tmp: Path) -> None:
    exe = _chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing under CI=true: .ci/run installs it")
        pytest.skip("chromium not installed (CI installs it)")
    shot = tmp / "shot.png"
    proc = subprocess.run([exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
                           "--log-level=0", f"--user-data-dir={tmp / 'profile'}", "--window-size=1200,3000",
                           f"--screenshot={shot}", index.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.exists(), proc.stderr[-2000:]
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]   # any console message
    assert not console, console
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)
    assert img.shape[0] > 500 and img[..., :3].std() > 0.05          # not blank: text, tables and figures


def _as_killed_after_refractory(whole: Path, part: Path) -> None:
    """``part``: a copy of the finished report ``whole`` reduced to what a run killed inside the
    characteristics stage, after its ``refractory`` protocol, leaves behind (files are written
    atomically, so a kill leaves finished files only): the protocols up to refractory, no stage
    marker, no later stage, no summary or report; the ablation keeps the finished training runs of
    two variants (so run-level reuse is exercised too) and loses the third's."""
    shutil.copytree(whole, part)
    for name in ("summary.json", "index.html", "timing.json"):
        (part / name).unlink()
    chars = part / "stages" / "characteristics"
    for f in [chars / "stage.json", chars / "summary.png", *chars.glob("stochasticity.*"), *chars.glob("energy.*")]:
        f.unlink()
    for name in ("stochastic_preset", "published", "published_fit", "calibration"):
        shutil.rmtree(part / "stages" / name)
    ablation = part / "stages" / "ablation"
    for f in ablation.iterdir():
        if f.name != "runs":
            f.unlink()
    shutil.rmtree(ablation / "runs" / "digits" / "lif")


@pytest.mark.slow
def test_reproduce_writes_a_report_and_resumes_to_the_same_summary(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    whole = cwd / "whole"
    p = _run(whole, cwd)
    assert p.wait(timeout=900) == 0, p.stderr.read()
    # a run interrupted inside the characteristics stage (one full run is the test's budget: the
    # interrupted state is derived from it), resumed, killed for real inside the resumed stage (after
    # it wrote one more protocol), and rerun to completion
    part = cwd / "part"
    _as_killed_after_refractory(whole, part)
    kept = [part / "stages" / "characteristics" / "refractory.json",
            part / "stages" / "characteristics" / "leaky_integration.nc",
            *sorted((part / "stages" / "ablation" / "runs" / "digits" / "full").glob("seed*/result.json"))]
    stamps = {f: f.stat().st_mtime_ns for f in kept}              # copytree keeps the finished run's times
    p = _run(part, cwd, start_new_session=True)
    stage = part / "stages" / "characteristics"
    t0 = time.time()
    while not (stage / "stochasticity.json").exists() and p.poll() is None and time.time() - t0 < 600:
        time.sleep(0.2)
    assert p.poll() is None, "the run ended before it could be interrupted"
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert not (part / "summary.json").exists() and not (stage / "stage.json").exists()
    assert not (stage / "energy.json").exists()
    p = _run(part, cwd)
    assert p.wait(timeout=900) == 0, p.stderr.read()
    a, b = (json.loads((d / "summary.json").read_text()) for d in (whole, part))
    assert a.pop("command") != b.pop("command")                      # they differ only by --out
    assert a == b
    # finished protocols and training runs were reused, not recomputed and rewritten
    assert len(kept) == 4 and {f: f.stat().st_mtime_ns for f in kept} == stamps
    # the report: every stage, links that resolve, nothing written outside --out
    assert set(a["stages"]) == set(R.STAGES)
    assert a["stages"]["calibration"]["skipped"] is True and a["stages"]["published_fit"]["skipped"] is True
    assert a["stages"]["published"]["total"] >= 15
    assert set(a["stages"]["ablation"]["table"]["digits"]) == {"full", "no_ip", "lif"}
    html = (whole / "index.html").read_text()
    links = _links(html)
    assert links and all((whole / u).exists() for u in links), [u for u in links if not (whole / u).exists()]
    for section in ("characteristics", "energy", "published", "calibration", "ablation", "parameters"):
        assert f'id="{section}"' in html
    assert html.count("data:image/png;base64,") >= 10
    assert sorted(x.name for x in cwd.iterdir()) == ["part", "whole"]
    _browser_check(whole / "index.html", tmp_path)


def test_bad_out_folders_are_refused_with_a_clear_error(tmp_path):
    runner = CliRunner()
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    r = runner.invoke(app, ["reproduce", "--tiny", "--out", str(a_file)])
    assert r.exit_code == 2 and "is an existing file" in r.output
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.md").write_text("mine")
    r = runner.invoke(app, ["reproduce", "--tiny", "--out", str(foreign)])
    assert r.exit_code == 2 and "a non-empty folder that ionspike did not write" in r.output
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.md"]       # untouched
    old = tmp_path / "old"
    old.mkdir()
    (old / R.MARKER).write_text(json.dumps({"kind": "reproduce", "ionspike_version": "0.0.1", "mode": "tiny"}))
    r = runner.invoke(app, ["reproduce", "--tiny", "--out", str(old)])
    assert r.exit_code == 2 and f"ionspike_version = '0.0.1'; this run has ionspike_version = '{__version__}'" in r.output
    other_mode = tmp_path / "quick"
    other_mode.mkdir()
    (other_mode / R.MARKER).write_text(json.dumps({"kind": "reproduce", "ionspike_version": __version__,
                                                   "mode": "quick"}))
    r = runner.invoke(app, ["reproduce", "--tiny", "--out", str(other_mode)])
    assert r.exit_code == 2 and "mode = 'quick'; this run has mode = 'tiny'" in r.output
    train_out = tmp_path / "train"
    train_out.mkdir()
    (train_out / R.MARKER).write_text(json.dumps({"kind": "train"}))
    r = runner.invoke(app, ["reproduce", "--tiny", "--out", str(train_out)])
    assert r.exit_code == 2 and "holds the output of `ionspike train`" in r.output
    r = runner.invoke(app, ["reproduce", "--tiny", "--out", "/proc/ionspike-report"])   # not creatable, even for root
    assert r.exit_code == 2 and "cannot be created" in r.output
    r = runner.invoke(app, ["reproduce", "--tiny", "--out", str(tmp_path / "new"), "--measured", str(a_file)])
    assert r.exit_code == 2 and "--measured" in r.output and "not a folder" in r.output
    assert not (tmp_path / "new").exists()


def test_the_report_states_a_failed_calibration_verdict(tmp_path):
    from ionspike.calibrate import verdict as V
    from ionspike.report import html

    failed = V.Verdict(passed=False, checks=tuple(V.ks_checks("pulses", {"delay_s": 0.5})))
    stage = {"skipped": False, "fits": {"pulses": {"file": "trials.npz", "ks": {"delay_s": 0.5}, "fitted": {"mu": 550.0},
                                                   "verdict": failed.to_dict(), "notes": ["fit from only 7 trials"],
                                                   "figures": []}}}
    text = html._calibration(tmp_path, stage)
    assert "Verdict: <span class=fail>FAILED</span>" in text
    assert "<li class=fail>KS switching delay 0.500 (limit 0.35)</li>" in text and "<li>fit from only 7 trials</li>" in text
