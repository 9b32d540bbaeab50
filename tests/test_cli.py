"""The command line, run as a user runs it (a real subprocess of the installed entry point)."""

import json
import subprocess
import sys

import pytest

import ionspike as isp


def run(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "ionspike.cli", *args], capture_output=True, text=True,
                          timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}")
    return proc


def test_simulate_writes_traces_metrics_and_figure(tmp_path):
    out = tmp_path / "run"
    run("simulate", "--preset", "paper", "--pulse", "0.8V,1ms,2ms", "--duration", "150ms",
        "--set", "Rc=250MOhm", "--n", "2", "--seed", "3", "--deterministic", "--out", str(out))
    assert {p.name for p in out.iterdir()} == {"traces.nc", "metrics.json", "traces.png"}
    m = json.loads((out / "metrics.json").read_text())
    for key in ("first_spike_s", "spike_count", "isi_mean_s", "energy_per_spike_J", "params"):
        assert key in m
    assert len(m["first_spike_s"]) == 2 and m["first_spike_s"][0] == pytest.approx(88e-3, rel=0.15)
    assert m["params"]["circuit"]["r_c"] == 250e6 and m["params"]["noise"]["n_eff"] == "inf"
    assert m["energy_per_spike_J"] > 0
    ds = isp.io.read_netcdf(out / "traces.nc")
    assert ds.V_g.attrs["units"] == "V" and ds.sizes["neuron"] == 2
    assert (out / "traces.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dc_input_and_preset_defaults(tmp_path):
    out = tmp_path / "dc"
    run("simulate", "--preset", "si-exact", "--dc", "0.8V", "--duration", "40ms", "--out", str(out))
    m = json.loads((out / "metrics.json").read_text())
    assert m["stimulus"]["kind"] == "DC" and m["dm_on_count"][0] >= 1


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
    assert not (tmp_path / "x" / "metrics.json").exists()


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
