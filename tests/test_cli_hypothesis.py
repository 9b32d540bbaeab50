"""Property-based tests of the CLI's option parsing: whatever a user types, the command ends in a
clear error (exit 2, a message, no traceback) or a valid result; never a traceback, never exit 1.

The Typer app is called in-process (typer.testing.CliRunner: the same parsing and the same command
code as the installed entry point, without a Python start-up per example); the real-subprocess
cases are in test_cli.py. Example counts (fixed, no deadline) are stated per property.
"""

import os
import string
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ionspike import io
from ionspike.cli import app
from ionspike.spice import deck

RUNNER = CliRunner()
PROFILE = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

# ----------------------------------------------------------------------------- value strategies
garbage = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=24)
number = st.one_of(st.integers(-10**6, 10**6).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                   st.sampled_from(["1e308", "1e-320", "-0", "1e999", "0x10", "1_000", "½", "١٢"]))
unit = st.sampled_from(["s", "ms", "us", "µs", "ns", "V", "mV", "Ohm", "MOhm", "pF", "A", "J", "1/(s*V)", "",
                        "parsec", "s*10**10**10", "[/]"])
quantity = st.one_of(st.tuples(number, st.sampled_from(["", " "]), unit).map("".join), garbage)
short_time = st.tuples(st.floats(0.05, 20), st.sampled_from(["ms", " ms"])).map(lambda t: f"{t[0]:.3g}{t[1]}")
pulse = st.one_of(
    st.tuples(quantity, quantity, quantity).map(",".join),
    st.tuples(st.floats(-2, 2), st.floats(0.01, 2), st.floats(0.01, 4)).map(lambda t: f"{t[0]:.3g}V,{t[1]:.3g}ms,{t[2]:.3g}ms"),
    garbage)
param_name = st.one_of(st.sampled_from(["Rc", "Cg", "mu", "Vh", "alpha", "N_eff", "sigma_d2d", "sigma_c2c", "VT",
                                        "polarity", "circuit.r_c", "memristor.mu"]), garbage)
assignment = st.one_of(st.tuples(param_name, quantity).map("=".join), garbage)
preset = st.one_of(st.sampled_from(["paper", "stochastic", "si-exact", "65nm", "3nm"]), garbage)
count = st.one_of(st.integers(-3, 12).map(str), st.integers(-2**70, 2**70).map(str), garbage)


def _clear_error_or_result(result) -> None:
    out = result.output
    assert "Traceback" not in out, out
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 2), f"exit {result.exit_code}: {out[-800:]}"
    if result.exit_code == 2:
        lines = out.strip().splitlines()
        assert lines and ("error:" in out or "Usage:" in out), out      # ours, or typer's usage error
        assert "error: unexpected" not in out


# ----------------------------------------------------------------------------- export spice: every option at once
EXPORT_EXAMPLES = 60


@settings(max_examples=EXPORT_EXAMPLES, **PROFILE)
@given(opts=st.fixed_dictionaries({}, optional={
    "--preset": preset, "--pulse": pulse, "--dc": quantity, "--duration": st.one_of(short_time, quantity),
    "--dt": quantity, "--n": count, "--seed": count, "--model": st.one_of(st.sampled_from(["mosfet", "behavioural"]),
                                                                            garbage),
    "--set": st.lists(assignment, max_size=3)}))
def test_export_spice_options_give_a_deck_or_a_clear_error(opts):
    args = []
    for key, value in opts.items():
        for v in (value if isinstance(value, list) else [value]):
            args += [key, v]
    with tempfile.TemporaryDirectory() as d:
        target = Path(d) / "n.cir"
        result = RUNNER.invoke(app, ["export", "spice", "-o", str(target), *args])
        _clear_error_or_result(result)
        if result.exit_code == 0:
            text = target.read_text()
            assert text.startswith(deck.HEADER) and deck.check(text) == text
        else:
            assert not target.exists()
        assert sorted(os.listdir(d)) == (["n.cir"] if result.exit_code == 0 else [])


# ----------------------------------------------------------------------------- one bad option, every command
# (command, option, strategy of values that must be refused): a value that slipped through would
# start a run, and the property (exit 2) would fail on it.
not_a_number = st.text(st.characters(codec="utf-8", exclude_characters="\x00", exclude_categories=("Nd", "No")),
                       min_size=1, max_size=16).filter(lambda s: s.strip().lower().lstrip("+-") not in ("inf", "nan",
                                                                                                     "infinity"))
non_positive_time = st.one_of(st.floats(-1e3, 0).map(lambda x: f"{x:.3g} ms"), st.sampled_from(["0 s", "-0 ms"]))
wrong_dimension = st.tuples(st.floats(0.1, 10), st.sampled_from(["V", "Ohm", "pF", "A", "J", "1/s"])).map(
    lambda t: f"{t[0]:.3g} {t[1]}")
bad_time = st.one_of(not_a_number, non_positive_time, wrong_dimension)
unknown_name = st.text(string.ascii_letters + "_-.[]/", min_size=1, max_size=12).filter(
    lambda s: s not in ("paper", "stochastic", "si-exact", "65nm", "3nm", "all") and not os.path.exists(s))
non_positive = st.integers(-10**6, 0).map(str)

BAD = [
    ("simulate", "--duration", bad_time),
    ("simulate", "--dt", st.one_of(bad_time, st.sampled_from(["1 s", "10 ms"]))),
    ("simulate", "--dc", st.one_of(not_a_number, st.sampled_from(["1 s", "5 Ohm", "nan V", "inf V"]))),
    ("simulate", "--pulse", st.one_of(not_a_number, st.sampled_from(["0.8V,1ms", "0.8V,3ms,2ms", "0.8V,-1ms,2ms",
                                                                      "0.8V,1ms,2ms,4ms"]))),
    ("simulate", "--set", st.one_of(st.tuples(unknown_name, st.just("1")).map("=".join),
                                    st.tuples(st.sampled_from(["Rc", "Cg", "mu"]), not_a_number).map("=".join),
                                    st.sampled_from(["Rc=-5Ohm", "Rc=1 V", "noequals", "=", "Rc=", "Cg=0 F"]))),
    ("simulate", "--n", non_positive),
    ("simulate", "--seed", st.one_of(st.integers(-2**70, -1), st.integers(2**63, 2**70)).map(str)),
    ("simulate", "--engine", unknown_name),
    ("simulate", "--preset", unknown_name),
    ("export spice", "--model", unknown_name.filter(lambda s: s not in ("mosfet", "behavioural"))),
    ("export spice", "--n", st.one_of(non_positive, st.integers(10_001, 10**9).map(str))),
    ("validate spice", "--n", non_positive),
    ("validate spice", "--duration", bad_time),
    ("characterize", "--only", unknown_name),
    ("characterize", "--trials", non_positive),
    ("train", "--task", unknown_name),
    ("train", "--neuron", unknown_name),
    ("train", "--variant", unknown_name.filter(lambda s: s != "full")),
    ("train", "--hidden", non_positive),
    ("train", "--epochs", non_positive),
    ("train", "--batch", non_positive),
    ("train", "--lr", st.one_of(st.floats(-10, 0).map(str), st.sampled_from(["nan", "inf", "1e9"]))),
    ("train", "--substeps", st.one_of(not_a_number, st.sampled_from(["0", "65", "-1", "2,1", "1.5"]))),
    ("ablate", "--variants", unknown_name),
    ("ablate", "--task", unknown_name),
    ("ablate", "--seeds", non_positive),
    ("ablate", "--read-energy", st.one_of(not_a_number, wrong_dimension.filter(lambda s: not s.endswith(" J")),
                                          st.sampled_from(["-1 fJ", "1 J", "nan J"]))),
    ("ablate", "--epochs", non_positive),
    ("calibrate dc-sweeps", "--hold", bad_time),
    ("calibrate dc-sweeps", "--i-on", st.one_of(not_a_number, st.sampled_from(["1 s", "5 V"]))),
    ("calibrate pulses", "--series-resistance", st.one_of(not_a_number, st.sampled_from(["-1 Ohm", "1 s"]))),
]
BAD_EXAMPLES = 80
NEEDS_DATA = {"calibrate dc-sweeps": "dm_symmetric_dc_sweeps.npz", "calibrate pulses": "dm_pulse_trials.npz"}


@settings(max_examples=BAD_EXAMPLES, **PROFILE)
@given(data=st.data(), which=st.sampled_from(range(len(BAD))))
def test_one_bad_option_is_refused_clearly_and_nothing_is_written(data, which):
    command, option, values = BAD[which]
    value = data.draw(values, label=f"{command} {option}")
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "out"
        args = command.split()
        if command in NEEDS_DATA:
            args.append(str(Path(d) / NEEDS_DATA[command]))        # absent: the option is checked first
        args += ["-o", str(Path(d) / "n.cir")] if command == "export spice" else ["--out", str(out)]
        if command == "simulate" and option != "--duration":
            args += ["--duration", "1 ms"]
        result = RUNNER.invoke(app, [*args, option, value])
        _clear_error_or_result(result)
        assert result.exit_code == 2, f"{command} {option} {value!r} was accepted: {result.output[-500:]}"
        said = " ".join(result.output.split()).lower()
        assert option.lower() in said or option.lstrip("-").replace("-", "_") in said, said   # names the option
        assert os.listdir(d) == []                                 # no folder, no file


# ----------------------------------------------------------------------------- output paths
PATH_EXAMPLES = 60
path_name = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=40).filter(
    lambda s: not s.startswith("/") and ".." not in s)            # relative, staying below the working folder


@settings(max_examples=PATH_EXAMPLES, **PROFILE)
@given(name=st.one_of(path_name, st.tuples(path_name, path_name).map("/".join), st.just("x" * 300),
                      st.sampled_from(["..", ".", "a/../b", "./c", "../up.cir", "[/]x", "x\n.control"])))
def test_any_output_name_stays_inside_or_is_refused(name):
    with tempfile.TemporaryDirectory() as d:
        inner = Path(d) / "cwd"
        inner.mkdir()
        cwd = os.getcwd()
        os.chdir(inner)
        try:
            result = RUNNER.invoke(app, ["export", "spice", "--dc", "0.8V", "--duration", "1ms", "-o", name])
        finally:
            os.chdir(cwd)
        out = result.output
        assert "Traceback" not in out and (result.exception is None or isinstance(result.exception, SystemExit))
        # 1 only for what the file system itself refuses (a name longer than it allows), in one line
        assert result.exit_code in (0, 2) or (result.exit_code == 1 and "File name too long" in out), out
        written = [p for p in Path(d).rglob("*") if p.is_file()]
        assert all(Path(d) in p.parents for p in written), written  # nothing outside the temporary folder
        assert len(written) == (1 if result.exit_code == 0 else 0)
        if result.exit_code == 0:
            assert written[0] == io.normalize(inner / name)
