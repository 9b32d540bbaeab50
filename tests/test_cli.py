"""The command line, run as a user runs it (a real subprocess of the installed entry point)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import ionspike as isp
from ionspike.io import MARKER

CLI = [sys.executable, "-m", "ionspike.cli"]


def run(*args, check=True, env=None, cwd=None):
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600,
                          env=None if env is None else {**os.environ, **env}, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}")
    return proc


def test_simulate_writes_traces_metrics_and_figure(tmp_path):
    out = tmp_path / "run"
    run("simulate", "--preset", "paper", "--pulse", "0.8V,1ms,2ms", "--duration", "150ms",
        "--set", "Rc=250MOhm", "--n", "2", "--seed", "3", "--deterministic", "--out", str(out))
    assert {p.name for p in out.iterdir()} == {MARKER, "traces.nc", "metrics.json", "traces.png"}
    assert json.loads((out / MARKER).read_text()) == {"kind": "simulate"}
    m = json.loads((out / "metrics.json").read_text())
    for key in ("first_spike_s", "spike_count", "isi_mean_s", "energy_per_spike_J", "params"):
        assert key in m
    # deterministic, so both neurons are the same neuron: the Fig. 2e first spike (90.9 ms, the ngspice
    # cross-check; paper ~88 ms) and 7 spikes in 150 ms
    assert m["first_spike_s"] == [pytest.approx(0.0909, rel=0.01)] * 2 and m["spike_count"] == [7, 7]
    assert m["params"]["circuit"]["r_c"] == 250e6 and m["params"]["noise"]["n_eff"] == "inf"
    assert m["energy_per_spike_J"] == pytest.approx(m["energy_total_J"] / 14, rel=1e-9, abs=0)
    assert m["input_energy_per_spike_J"] == pytest.approx(6.34e-12, rel=0.05, abs=0)        # pJ per spike at the input
    ds = isp.io.read_netcdf(out / "traces.nc")
    assert ds.V_g.attrs["units"] == "V" and ds.sizes["neuron"] == 2
    assert (out / "traces.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dc_input_and_preset_defaults(tmp_path):
    out = tmp_path / "dc"
    run("simulate", "--preset", "si-exact", "--dc", "0.8V", "--duration", "40ms", "--out", str(out))
    m = json.loads((out / "metrics.json").read_text())
    # the si-exact DC turn-on (34.92 ms, the ngspice cross-check) is the one event within 40 ms
    assert m["stimulus"] == {"kind": "DC", "amplitude": 0.8, "delay": 0.0, "baseline": 0.0}
    assert m["dm_on_count"] == [1] and m["spike_count"] == [1]
    assert m["first_spike_s"][0] == pytest.approx(34.92e-3, rel=0.01)


@pytest.mark.parametrize("args, fragment", [
    (["--set", "Rc=250 Mohms?"], "not a quantity"),
    (["--set", "Rc=-5Ohm"], "circuit.r_c = -5"),
    (["--set", "Rx=1"], "unknown parameter 'Rx'"),
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--dt", "1ms"], "too coarse for the stimulus"),
    (["--pulse", "0.8V,1ms"], "AMPLITUDE,WIDTH,PERIOD"),
])
def test_bad_input_exits_2_with_a_clear_message(tmp_path, args, fragment):
    proc = run("simulate", "--duration", "5ms", "--out", str(tmp_path / "x"), *args, check=False)
    assert proc.returncode == 2
    assert fragment in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()                 # nothing written, no folder left behind


def test_out_pointing_at_a_file_is_refused(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("keep me")
    proc = run("simulate", "--duration", "5ms", "--out", str(f), check=False)
    assert proc.returncode == 2 and "is an existing file" in proc.stderr
    assert f.read_text() == "keep me"


def test_presets_command_lists_and_shows():
    listing = run("presets").stdout
    for name in ("paper", "stochastic", "si-exact", "65nm", "3nm"):
        assert name in listing
    shown = json.loads(run("presets", "3nm").stdout)
    assert shown["params"]["circuit"]["c_g"] == pytest.approx(4.14e-18, rel=1e-9, abs=0)


def _preset_file(tmp_path, name: str, extra: str = "") -> str:
    path = tmp_path / "evil.toml"
    path.write_text(f'extends = "paper"\nname = {json.dumps(name)}\n{extra}', encoding="utf-8")
    return str(path)


def test_rich_markup_in_a_name_is_printed_as_text(tmp_path):
    # the preset's name reaches the error message; '[/]' used to crash the error printer
    preset = _preset_file(tmp_path, "[/][bold]x", '[circuit]\nbogus = "1"\n')
    proc = run("simulate", "--preset", preset, "--duration", "5ms", "--out", str(tmp_path / "o"), check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: preset '[/][bold]x'.circuit: unknown field(s) ['bogus']")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args, fragment", [
    (["export", "spice", "--n", "0", "-o", "{tmp}/n.cir"], "--n = 0 is out of range: allowed integers 1..10000"),
    (["export", "spice", "-o", "{tmp}/missing/n.cir"], "the folder '{tmp}/missing' does not exist"),
    (["export", "spice", "-o", "{tmp}"], "is a directory: allowed a file name"),
    (["simulate", "--engine", "ngspice", "--n", "-2", "--out", "{tmp}/o"], "--n = -2 is out of range"),
    (["simulate", "--engine", "spectre", "--out", "{tmp}/o"], "--engine 'spectre': allowed 'ionspike' or 'ngspice'"),
    (["ablate", "--read-energy", "5 V", "--out", "{tmp}/o"], "--read-energy = '5 V': has unit V"),
    (["ablate", "--read-energy", "1 J", "--out", "{tmp}/o"], "read_energy = 1.0 is out of range: allowed [0, 1 uJ)"),
    (["ablate", "--seeds", "0", "--out", "{tmp}/o"], "--seeds = 0 is out of range: allowed integers >= 1"),
    (["ablate", "--hidden", "0", "--out", "{tmp}/o"], "hidden = 0 is out of range"),
    (["ablate", "--patience", "0", "--out", "{tmp}/o"], "patience = 0 is out of range: allowed integers >= 1"),
    (["simulate", "--n", "abc", "--out", "{tmp}/o"], "Invalid value for '--n'"),
])
def test_bad_options_are_refused_before_anything_runs(tmp_path, args, fragment):
    proc = run(*[a.format(tmp=tmp_path) for a in args], check=False)
    assert proc.returncode == 2, proc.stderr
    assert fragment.format(tmp=tmp_path) in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []            # no deck, no folder


def test_an_os_error_is_one_line_with_exit_1_and_debug_shows_the_traceback(tmp_path):
    target = tmp_path / ("n" * 300 + ".cir")                           # longer than a file name may be
    proc = run("export", "spice", "--pulse", "0.8V,1ms,2ms", "--duration", "10ms", "-o", str(target), check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: File name too long")
    assert "Traceback" not in proc.stderr
    proc = run("export", "spice", "--pulse", "0.8V,1ms,2ms", "--duration", "10ms", "-o", str(target), check=False,
               env={"IONSPIKE_DEBUG": "1"})
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "OSError" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def _start(args, cwd):
    # SIGINT at its default, as in a terminal (a background shell would have it ignored)
    return subprocess.Popen([*CLI, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for(path, proc, limit=600.0):
    t0 = time.time()
    while not path.exists() and proc.poll() is None and time.time() - t0 < limit:
        time.sleep(0.05)
    assert proc.poll() is None, f"ended before it could be interrupted: {proc.communicate()[1][-2000:]}"


def _history(checkpoint):
    meta = np.load(checkpoint)["meta"]
    return json.loads(meta.tobytes().decode())["history"]


def test_ctrl_c_stops_train_with_130_and_the_rerun_resumes(tmp_path):
    args = ["train", "--out", "run", "--task", "digits", "--hidden", "4", "--epochs", "5", "--n-train", "32",
            "--n-test", "16", "--batch", "16", "--substeps", "2"]
    proc = _start(args, tmp_path)
    _wait_for(tmp_path / "run" / "checkpoint.npz", proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted; rerun the same command to resume"
    assert "Traceback" not in stderr
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted([MARKER, "checkpoint.npz"])
    done = _history(tmp_path / "run" / "checkpoint.npz")
    assert 1 <= len(done) < 5
    rerun = run(*args, cwd=tmp_path)
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert [row["epoch"] for row in result["history"]] == [1, 2, 3, 4, 5]
    assert result["history"][: len(done)] == done          # the epochs before the interruption were not rerun
    assert "test accuracy" in rerun.stderr
    # not a terminal: the live bar is off and progress comes as plain lines, the first and last epoch at least
    lines = [line for line in rerun.stderr.splitlines() if " epochs (" in line]
    assert f"{len(done) + 1}/5 epochs (" in lines[0] and "5/5 epochs (" in lines[-1], rerun.stderr
    assert all(line.startswith("train digits 1m1t1r full: val ") for line in lines), rerun.stderr


def test_ctrl_c_stops_simulate_with_130_and_removes_its_folder(tmp_path):
    proc = _start(["simulate", "--duration", "30 s", "--n", "4", "--out", "a/sim"], tmp_path)
    _wait_for(tmp_path / "a" / "sim" / MARKER, proc)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "interrupted" and "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []


def test_export_replaces_only_its_own_deck_unless_forced(tmp_path):
    mine = tmp_path / "notes.cir"
    mine.write_text("my own netlist\n")
    args = ["export", "spice", "--dc", "0.8V", "--duration", "10ms"]
    proc = run(*args, "-o", str(mine), check=False)
    assert proc.returncode == 2 and "exists and was not written by this command" in " ".join(proc.stderr.split())
    assert mine.read_text() == "my own netlist\n"
    run(*args, "--force", "-o", str(mine))
    first = mine.read_text()
    assert first.startswith("* ionspike") and "Vin in 0 DC 0.8" in first
    run(*args, "--n", "2", "-o", str(mine))                  # an ionspike deck is replaced without --force
    assert "X1 in vdd g1 d1 neuron1m1t1r" in mine.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.cir"]


def test_published_writes_the_table_for_a_preset_file(tmp_path):
    """`ionspike published` on a user's preset file: every row of the published table (the first P(fire)
    rows named after the file, no second preset), JSON and CSV agree, pass counts add up; an unknown
    preset exits 2 and writes nothing."""
    import csv

    mine = tmp_path / "mine.toml"
    mine.write_text('extends = "paper"\n[circuit]\nr_c = "500 MOhm"\n')
    out = tmp_path / "pub"
    proc = run("published", "--preset", str(mine), "--stochastic-preset", "none", "--trials", "8", "--out", str(out))
    table = json.loads((out / "published.json").read_text())
    rows = table["rows"]
    assert len(rows) == 14 and table["total"] == 14 and table["stochastic_preset"] is None
    assert table["passed"] == sum(r["pass"] for r in rows) and f"{table['passed']}/14" in proc.stderr
    assert {"name", "paper", "ours", "tolerance", "pass"} <= set(rows[0])
    assert sum("(this preset)" in r["name"] for r in rows) == 3
    with open(out / "published.csv") as fh:
        assert [r["name"] for r in csv.DictReader(fh)] == [r["name"] for r in rows]
    # the file's R_c = 500 MOhm reaches the protocols: the Fig. 2e first spike is this preset's (90.995 ms),
    # not the paper preset's (90.888 ms, R_c = 250 MOhm; the refractory rows sweep R_c themselves)
    ds = isp.simulate(str(mine), isp.PulseTrain(0.8, 1e-3, 2e-3), duration="120 ms", deterministic=True, signals=())
    paper = isp.simulate("paper", isp.PulseTrain(0.8, 1e-3, 2e-3), duration="120 ms", deterministic=True, signals=())
    assert rows[0]["ours"] == pytest.approx(float(ds.spike_time[0, 0]), rel=1e-6, abs=0)
    assert abs(rows[0]["ours"] - float(paper.spike_time[0, 0])) > 5e-5
    bad = run("published", "--preset", "no-such-preset", "--out", str(tmp_path / "never"), check=False)
    assert bad.returncode == 2 and "no-such-preset" in bad.stderr and not (tmp_path / "never").exists()
