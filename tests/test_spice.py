"""ngspice export, run with the real ngspice (installed by .ci/run), and agreement with ionspike."""

import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ionspike as isp
from ionspike import spice

PULSES = isp.PulseTrain(amplitude=0.8, width=1e-3, period=2e-3)
needs_ngspice = pytest.mark.skipif(shutil.which("ngspice") is None and not __import__("os").environ.get("CI"),
                                   reason="ngspice not installed (CI installs it and runs these)")


def test_netlist_is_readable_and_carries_the_parameters():
    p = isp.presets.params("paper").deterministic()
    text = spice.netlist(p, PULSES, duration=0.01, dt=2e-6, n=2, mu_scale=[1.0, 1.2])
    assert text.startswith("* ionspike")
    assert ".param vh=0.5 alpha=0.01 beta=20" in text and "rc=250000000" in text
    assert text.count(".subckt neuron1m1t1r") == 1
    assert "X0 in vdd g0 d0 neuron1m1t1r mu=550" in text and "X1 in vdd g1 d1 neuron1m1t1r mu=660" in text
    assert "PULSE(0 0.8 0 1e-09 1e-09" in text and ".tran 2e-06 0.01 0 2e-06" in text
    assert ".model nch nmos level=1 vto=0.22 kp=0.00075" in text


def test_what_ngspice_cannot_express_is_refused():
    with pytest.raises(spice.SpiceError, match="n_eff"):
        spice.netlist(isp.presets.params("paper"), PULSES, duration=0.01, dt=2e-6)
    with pytest.raises(spice.SpiceError, match="sigma_c2c"):
        spice.netlist(isp.replace(isp.presets.params("paper"), N_eff=float("inf"), sigma_c2c=0.2), PULSES,
                      duration=0.01, dt=2e-6)
    p = isp.replace(isp.presets.params("paper").deterministic(), Rc=np.array([1e8, 2e8]))
    with pytest.raises(spice.SpiceError, match="circuit.r_c varies per neuron"):
        spice.netlist(p, PULSES, duration=0.01, dt=2e-6, n=2)


def test_missing_ngspice_gives_the_install_hint(monkeypatch, tmp_path):
    monkeypatch.setenv("IONSPIKE_NGSPICE", str(tmp_path / "no-such-ngspice"))
    with pytest.raises(spice.NgspiceMissing, match="apt-get install ngspice"):
        spice.run("* empty\n.end\n", isp.presets.params("paper"), n=1)


@needs_ngspice
def test_ngspice_errors_carry_ngspices_own_message():
    deck = "* broken\nV1 in 0 DC 1\nR1 in 0 {undefined_param}\n.tran 1e-06 1e-05\n.end\n"
    with pytest.raises(spice.NgspiceError) as info:
        spice.run(deck, isp.presets.params("paper"), n=1)
    assert "undefined_param" in str(info.value).lower() or "error" in str(info.value).lower()


@needs_ngspice
def test_paper_preset_spike_times_agree_with_ngspice():
    # The Fig. 2e protocol: the first nine spikes (168 ms) agree within 1 % (measured ~1e-4). Later this
    # protocol hinges on marginal events: the tenth spike comes 40 us before its pulse ends, and whether the
    # DM is still on at the edge decides the next 10 ms; the eleventh spike moves by 2 ms between
    # ngspice's own reltol 1e-4 and 1e-6. So the comparison window ends before them (168 ms).
    report, ours, theirs = spice.validate("paper", PULSES, duration="168 ms")
    n = report["neurons"][0]
    assert n["first_spike_rel_diff"] < 0.01
    a = ours.spike_time.values[0][np.isfinite(ours.spike_time.values[0])]
    b = theirs.spike_time.values[0][np.isfinite(theirs.spike_time.values[0])]
    assert a.size == b.size == 9
    assert np.all(np.abs(np.diff(a) - np.diff(b)) / np.diff(b) < 0.01)
    assert n["vg_rms_rel_peak"] < 0.02          # V_g waveforms within 2 % RMS of the peak


@needs_ngspice
def test_si_exact_dc_turn_on_agrees_with_ngspice():
    report, ours, theirs = spice.validate("si-exact", isp.DC(0.8), duration="40 ms")
    a = ours.dm_on_time.values[0][0]
    b = theirs.dm_on_time.values[0][0]
    assert a == pytest.approx(b, rel=0.01) and b == pytest.approx(34.92e-3, rel=0.01)


@needs_ngspice
def test_device_spread_copies_match_the_same_draw():
    p = isp.replace(isp.presets.params("paper").deterministic(), sigma_d2d=0.2)
    report, ours, theirs = spice.validate(p, PULSES, duration="150 ms", n=10, seed=4)
    fired = [(r["first_spike_s"]["ionspike"] is not None, r["first_spike_s"]["ngspice"] is not None)
             for r in report["neurons"]]
    assert all(a == b for a, b in fired)               # the same copies fire within 150 ms (slow devices do not)
    firsts = [r["first_spike_rel_diff"] for r in report["neurons"] if r["first_spike_rel_diff"] is not None]
    assert [a for a, _ in fired] == [True, True, False, True, True, True, True, False, False, False]   # seed 4's draw
    assert len(firsts) == 6 and max(firsts) < 0.01    # each copy's first spike within 1 % (measured < 1e-5)


@needs_ngspice
def test_cli_export_and_ngspice_engine(tmp_path):
    import json
    import subprocess
    import sys

    deck = tmp_path / "n.cir"
    proc = subprocess.run([sys.executable, "-m", "ionspike.cli", "export", "spice", "--preset", "paper",
                           "--pulse", "0.8V,1ms,2ms", "--duration", "100ms", "--n", "2", "-o", str(deck)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert ".subckt neuron1m1t1r" in deck.read_text()
    assert "note: the noise (n_eff = 30) has no ngspice form" in proc.stderr
    out = tmp_path / "ng"
    proc = subprocess.run([sys.executable, "-m", "ionspike.cli", "simulate", "--engine", "ngspice", "--preset", "paper",
                           "--duration", "100ms", "--deterministic", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["first_spike_s"][0] == pytest.approx(0.0909, rel=0.01)


@needs_ngspice
def test_symmetric_device_with_reverse_onset_and_rate_agrees_with_ngspice():
    # a calibrated symmetric device carries its own reverse drift onset and rate into the deck
    import dataclasses

    p = isp.presets.params("paper").deterministic()
    p = dataclasses.replace(p, memristor=dataclasses.replace(p.memristor, polarity="symmetric",
                                                             v_h_reverse_shift=0.1, mu_reverse_factor=2.0))
    on = {}
    for amp in (-0.9, 0.9):
        _, ours, theirs = spice.validate(p, isp.DC(amp), duration="10 ms")
        a, b = ours.dm_on_time.values[0][0], theirs.dm_on_time.values[0][0]
        assert a == pytest.approx(b, rel=0.01)                      # measured ~2e-4
        on[amp] = b
    assert on[-0.9] < 0.6 * on[0.9]          # reverse: 0.1 V less drive but twice the rate -> switches sooner


# ----------------------------------------------------------------------------- strings never reach ngspice as commands
HOSTILE = {
    "newline": "x\n.control\nshell touch {pwned}\n.endc\n",
    "carriage return": "x\r.control\rshell touch {pwned}\r.endc\r",
    "crlf": "x\r\n.control\r\nshell touch {pwned}\r\n.endc",
    "line separator": "x\u2028.control\u2028shell touch {pwned}\u2028.endc",
    "next line": "x\u0085.control\u0085shell touch {pwned}\u0085.endc",
    "hash comment": "\n*# shell touch {pwned}",
    "long": "y" * 5000 + "\n.control\nshell touch {pwned}\n.endc",
    "rich markup": "[/][bold]x[/bold]\n.include /etc/passwd",
}


def _hostile_preset(tmp_path, key, pwned):
    import json

    path = tmp_path / "evil.toml"
    path.write_text(f'extends = "paper"\nname = {json.dumps(HOSTILE[key].format(pwned=pwned))}\n', encoding="utf-8")
    return path


def test_comment_is_one_printable_line():
    for text in [v.format(pwned="/tmp/x") for v in HOSTILE.values()] + ["", "\t\x00\x1b[31m", "µ §"]:
        line = spice.deck.comment(text)
        assert "\n" not in line and "\r" not in line and line.isprintable()
        assert line == "*" or (line.startswith("* ") and not line.startswith("*#"))
        assert len(line) <= 2 + spice.deck.COMMENT_MAX_CHARS
    assert spice.deck.comment("a\nb\u2028c") == "* a b c"


TITLE_EXAMPLES = 300


@settings(max_examples=TITLE_EXAMPLES, deadline=None, derandomize=True)
@given(title=st.one_of(st.text(), st.text(st.sampled_from("\n\r\x0b\x0c\x85\u2028\u2029*#.;$ control shell"))))
def test_any_title_gives_a_deck_that_passes_the_guard_with_one_comment_line(title):
    p = isp.presets.params("paper").deterministic()
    plain = spice.netlist(p, PULSES, duration=0.01, dt=2e-6, title="t")
    deck = spice.netlist(p, PULSES, duration=0.01, dt=2e-6, title=title)
    assert spice.deck.check(deck) == deck
    a, b = plain.split("\n"), deck.split("\n")
    assert len(a) == len(b) and [x for x, y in zip(a, b) if x != y] in ([], ["* t"])   # only the title line differs
    assert b[1] == (spice.deck.comment(title) if title else "* exported by ionspike.spice.netlist")


@pytest.mark.parametrize("bad, message", [
    (".control\nshell touch /tmp/x\n.endc", "contains '[.]control'"),
    ("*# echo x", "is not a line ionspike writes"),         # ngspice runs '*#' lines as control commands
    ("*#shell touch /tmp/x", "contains 'shell'"),
    (".include /etc/passwd", "contains '[.]include'"),
    (".LIB models.lib", "contains '[.]lib'"),
    ("R1 in 0 1k ; shell", "contains 'shell'"),
    ("V1 in 0 DC 1\r.control", "contains '[.]control'"),
    ("* fine\r.control", "contains '[.]control'"),        # a comment line with a carriage return is no comment
    ("* fine\u2028echo", "is not a line ionspike writes"),
    ("V1 in 0 DC 1 $ comment", "is not a line ionspike writes"),
    (".options reltol=1e-4 noinit", "is not a line ionspike writes"),
])
def test_the_deck_guard_refuses_anything_but_the_writers_lines(bad, message):
    good = spice.netlist(isp.presets.params("paper").deterministic(), PULSES, duration=0.01, dt=2e-6)
    assert spice.deck.check(good) == good
    deck = good.replace("* units:", bad + "\n* units:", 1)
    with pytest.raises(spice.SpiceError, match=message):
        spice.deck.check(deck)
    with pytest.raises(spice.SpiceError, match=message):
        spice.run(deck, isp.presets.params("paper"), n=1)          # never handed to ngspice


def test_the_deck_guard_wants_a_comment_first():
    good = spice.netlist(isp.presets.params("paper").deterministic(), PULSES, duration=0.01, dt=2e-6)
    for first in ("*ng_script", ".control", "V1 in 0 DC 1", "#"):
        with pytest.raises(spice.SpiceError, match="must start with a '[*] ' comment line"):
            spice.deck.check(first + "\n" + good)


@needs_ngspice
@pytest.mark.parametrize("key", sorted(HOSTILE))
def test_hostile_preset_names_run_safely_in_ngspice(tmp_path, key):
    pwned = tmp_path / "pwned"
    preset = isp.presets.load(_hostile_preset(tmp_path, key, pwned))
    p = preset.params.deterministic()
    deck = spice.netlist(p, isp.DC(0.8), duration=2e-3, dt=2e-6, title=f"preset {preset.name}, seed 0")
    assert deck.split("\n")[1].startswith("* preset x") or key in ("hash comment", "long", "rich markup")
    assert not any(line.lstrip().lower().startswith((".control", ".endc", "shell", ".include", "*#"))
                   for line in deck.split("\n"))
    ds = spice.run(deck, p, n=1)
    assert ds.sizes["neuron"] == 1 and ds.time.values[-1] == pytest.approx(2e-3)
    assert not pwned.exists()


@needs_ngspice
def test_hostile_names_through_the_real_cli(tmp_path):
    import subprocess
    import sys

    pwned = tmp_path / "pwned"
    preset = _hostile_preset(tmp_path, "newline", pwned)
    cli = [sys.executable, "-m", "ionspike.cli"]
    proc = subprocess.run([*cli, "simulate", "--engine", "ngspice", "--preset", str(preset), "--dc", "0.8V",
                           "--duration", "5ms", "--deterministic", "--out", str(tmp_path / "sim")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert not pwned.exists()
    deck = tmp_path / "evil.cir"
    proc = subprocess.run([*cli, "export", "spice", "--preset", str(preset), "--dc", "0.8V", "--duration", "5ms",
                           "-o", str(deck)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    text = deck.read_text()
    assert text.split("\n")[1] == f"* preset x .control shell touch {pwned} .endc , seed 0, 1 copies"
    assert spice.deck.check(text) == text
    # a file name that is itself hostile (the name defaults to the file's stem)
    stem = tmp_path / "x\n.control\nshell touch pwned2\n.endc.toml"
    stem.write_text('extends = "paper"\n')
    from typer.testing import CliRunner

    from ionspike.cli import app

    r = CliRunner().invoke(app, ["validate", "spice", "--preset", str(stem), "--dc", "0.8V", "--duration", "2ms"])
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "pwned2").exists() and not pwned.exists()
