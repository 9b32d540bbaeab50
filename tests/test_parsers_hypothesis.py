"""Property-based tests of the parsers at ionspike's edge (issue 12): the unit, parameter,
stimulus and preset parsers, fed arbitrary input, give a clear ionspike error or a valid
result; never another exception, never a hang (each example has a deadline).

Examples per test are bounded (``EXAMPLES``) so the file runs in well under a minute on two
cores; the counts are listed in the report of issue 12.
"""

import dataclasses
import math
import os
import tempfile
from datetime import timedelta
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
import tomli_w
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ionspike as isp
from ionspike import checks, precision, presets
from ionspike.errors import IonspikeError, PresetError, UnitError
from ionspike.params import ALIASES, NeuronParams, from_dict, parse_assignments, replace
from ionspike.stimulus import DC, PulseTrain, Sampled, Triangle, parse_pulse
from ionspike.units import DIMENSIONS, format_quantity, parse_quantity

EXAMPLES = 150
# a parser call takes milliseconds; 5 s per example is a hang guard, not a benchmark
SETTINGS = dict(deadline=timedelta(seconds=5), suppress_health_check=[HealthCheck.too_slow], derandomize=True,
                database=None)  # reproducible in CI, and nothing written into the checkout
PAPER = presets.params("paper")
UNITS = sorted(DIMENSIONS)


def outcome(fn, *args, **kwargs):
    """``fn(...)``'s result, or the IonspikeError it raised (with a message); any other
    exception propagates and fails the test."""
    try:
        result = fn(*args, **kwargs)
    except IonspikeError as exc:
        assert len(str(exc)) > 10, repr(exc)
        event(f"refused: {type(exc).__name__}")
        return exc
    event("valid result")
    return result


# ---------------------------------------------------------------------------------------- units

UNIT_CHARS = st.sampled_from(list("0123456789.eE+-*/^()  ΩµμkMGTpnumfa") + ["Ohm", "s", "V", "A", "F", "K", "Hz",
                                                                            "inf", "nan", "**", "1/", "x"])
unit_like_text = st.lists(UNIT_CHARS, max_size=30).map("".join)


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(text=st.one_of(st.text(max_size=60), unit_like_text), unit=st.sampled_from(UNITS))
def test_unit_parser_gives_a_number_or_a_unit_error(text, unit):
    result = outcome(parse_quantity, text, unit, name="field")
    if isinstance(result, IonspikeError):
        assert isinstance(result, UnitError) and "field" in str(result)
    else:
        assert isinstance(result, float) and not math.isnan(result)
        assert math.isfinite(result) or "inf" in text.lower()


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(st.data())
def test_hostile_unit_expressions_are_refused_quickly(data):
    # numbers as factors, nested or large powers, deep parentheses: the shapes that make pint slow
    base = data.draw(st.sampled_from(["s", "V", "(s*V)", "A/V"]))
    hostile = data.draw(st.sampled_from([
        f"{base}*10**10**10", f"{base}^2^2", f"({base}^2)^2", f"{base}**99", f"{base}*2", f"2*{base}",
        f"(((({base}))))", f"{base}^-9", "s" + "*s" * 30, f"{base}**(1/2)",
    ]))
    number = data.draw(st.floats(allow_nan=False, allow_infinity=False, width=32))
    with pytest.raises(UnitError, match="is not a quantity"):
        parse_quantity(f"{number} {hostile}", "s", name="dt")


PREFIXES = {"T": 1e12, "G": 1e9, "M": 1e6, "k": 1e3, "": 1.0, "m": 1e-3, "u": 1e-6, "µ": 1e-6, "n": 1e-9,
            "p": 1e-12, "f": 1e-15, "a": 1e-18}
SYMBOLS = {"ohm": ["Ohm", "Ω", "ohm"], "F": ["F"], "s": ["s"], "V": ["V"], "A": ["A"], "J": ["J"], "Hz": ["Hz"]}
finite = st.floats(min_value=-1e30, max_value=1e30, allow_nan=False, allow_infinity=False)


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(value=finite, unit=st.sampled_from(UNITS), digits=st.sampled_from([4, 17]))
def test_formatted_quantities_round_trip(value, unit, digits):
    text = format_quantity(value, unit, digits)
    back = parse_quantity(text, unit)
    # format_quantity keeps `digits` significant digits: 4 -> within 5e-4, 17 -> exact to rounding
    assert back == pytest.approx(value, rel=5e-4 if digits == 4 else 1e-12, abs=0), text


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(number=finite, prefix=st.sampled_from(sorted(PREFIXES)), unit=st.sampled_from(sorted(SYMBOLS)),
       data=st.data(), space=st.sampled_from(["", " ", "  "]))
def test_generated_prefixed_quantities_parse_to_si(number, prefix, unit, data, space):
    symbol = data.draw(st.sampled_from(SYMBOLS[unit]))
    text = f"{number!r}{space}{prefix}{symbol}"
    assert parse_quantity(text, unit) == pytest.approx(number * PREFIXES[prefix], rel=1e-12, abs=0), text


def test_every_unit_string_of_the_presets_and_readme_still_parses():
    for text, unit, si in [("550 1/(s*V)", "1/(s*V)", 550.0), ("9.75e-4 A/V^2", "A/V^2", 9.75e-4),
                           ("250 MOhm", "ohm", 2.5e8), ("10 pF", "F", 1e-11), ("2 us", "s", 2e-6), ("1 µs", "s", 1e-6),
                           ("1 TOhm", "ohm", 1e12), ("0.02 1/V", "1/V", 0.02), ("300 K", "K", 300.0),
                           ("250 MΩ", "ohm", 2.5e8), ("22kOhm", "ohm", 2.2e4), ("4.14 aF", "F", 4.14e-18),
                           ("4e18 Ohm", "ohm", 4e18), ("5.5e7 1/(s*V)", "1/(s*V)", 5.5e7), ("1 fJ", "J", 1e-15)]:
        assert parse_quantity(text, unit) == pytest.approx(si, rel=1e-12, abs=0), text
    for name in presets.names():   # every quantity in every built-in preset
        presets.load(name)


# ------------------------------------------------------------------------------------ parameters

anything = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
              st.sampled_from(["250 MOhm", "10 pF", "0.5 V", "600 1/s", "inf", "-1 Ohm", "1 s*10**10**10"])),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)
FIELDS = {section: sorted(getattr(PAPER, section).to_dict()) for section in ("memristor", "transistor", "circuit",
                                                                             "noise")}
UNIT_OF = {(section, f.name): f.metadata["unit"] for section in FIELDS
           for f in dataclasses.fields(getattr(PAPER, section)) if "unit" in f.metadata}


def _check_valid_params(p):
    assert isinstance(p, NeuronParams)
    again = from_dict(p.to_dict())      # a valid result round-trips through its own dict
    assert again.to_dict() == p.to_dict()


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(data=anything)
def test_from_dict_on_arbitrary_data(data):
    result = outcome(from_dict, data)
    if not isinstance(result, IonspikeError):
        _check_valid_params(result)


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(st.data())
def test_from_dict_with_one_field_replaced_by_anything(data):
    d = PAPER.to_dict()
    section = data.draw(st.sampled_from(sorted(d)))
    name = data.draw(st.one_of(st.sampled_from(FIELDS[section]), st.text(max_size=8)))
    old = d[section].get(name)
    unit = UNIT_OF.get((section, name))
    near = st.nothing() if not isinstance(old, float) or unit is None else st.floats(0.25, 4.0).flatmap(
        lambda k: st.sampled_from([old * k, format_quantity(old * k, unit), [old, old * k]]))
    d[section][name] = data.draw(st.one_of(anything, near))     # anything, or a plausible nearby value
    result = outcome(from_dict, d)
    if isinstance(result, IonspikeError):
        assert name in str(result) or section in str(result), str(result)
    else:
        _check_valid_params(result)


values = st.one_of(
    anything, finite, st.floats(),
    hnp.arrays(hnp.floating_dtypes() | hnp.integer_dtypes() | hnp.boolean_dtypes(),
               hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3)),
    st.lists(finite, max_size=3).map(lambda v: jnp.asarray(v)),
    st.builds(lambda v, u: format_quantity(v, u), finite, st.sampled_from(UNITS)),
)
names = st.one_of(st.sampled_from(sorted(ALIASES) + [f"{s}.{f}" for s, fs in FIELDS.items() for f in fs]),
                  st.text(max_size=12))


plausible = st.sampled_from(sorted(UNIT_OF)).flatmap(lambda key: st.tuples(
    st.just(f"{key[0]}.{key[1]}"),
    st.floats(0.25, 4.0).map(lambda k, key=key: format_quantity(getattr(getattr(PAPER, key[0]), key[1]) * k,
                                                                UNIT_OF[key]))))


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(overrides=st.one_of(st.dictionaries(names, values, max_size=3),
                           st.lists(plausible, max_size=3).map(dict)))
def test_replace_on_arbitrary_names_and_values(overrides):
    result = outcome(replace, PAPER, **overrides)
    if not isinstance(result, IonspikeError):
        _check_valid_params(result)


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(items=st.lists(st.one_of(st.text(max_size=20), st.integers(), st.none(),
                                st.builds(lambda k, v: f"{k}={v}", st.sampled_from(sorted(ALIASES)),
                                          st.text(max_size=10))), max_size=4))
def test_parse_assignments_on_arbitrary_items(items):
    result = outcome(parse_assignments, items)
    if not isinstance(result, IonspikeError):
        assert len(result) == len(items) and all(k and isinstance(v, str) for k, v in result.items())
        assert all("=" in item for item in items)
        result = outcome(presets.params, "paper", **result)   # and what --set then does with them
        if not isinstance(result, IonspikeError):
            _check_valid_params(result)


# -------------------------------------------------------------------------------------- stimuli

field = st.one_of(st.floats(), st.integers(-3, 3), st.booleans(), st.none(), st.text(max_size=8),
                  st.sampled_from(["1 ms", "0.8 V", "-2 s", "inf"]),
                  st.lists(st.floats(), min_size=0, max_size=3),
                  st.lists(st.floats(-10, 10), min_size=1, max_size=3).map(jnp.asarray),
                  hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3)))
physical = st.floats(1e-6, 1.0)


def _check_valid_stimulus(stim):
    n = stim.size()
    assert n >= 1 and stim.min_segment() > 0
    assert math.isfinite(stim.max_voltage()) and math.isfinite(stim.max_abs_voltage())
    stim.describe()
    with precision.float64():
        for t in (0.0, 1e-3, 1.0):
            v = np.asarray(stim.batched(n).value(jnp.float64(t)))
            assert v.shape in ((), (n,)) and not np.isnan(v).any()


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(spec=st.one_of(st.text(max_size=40), st.lists(st.one_of(UNIT_CHARS, st.just(",")), max_size=20).map("".join),
                      st.builds(lambda a, w, p: f"{a} V, {w} ms, {p} ms", st.floats(), st.floats(), st.floats())))
def test_parse_pulse_on_arbitrary_text(spec):
    result = outcome(parse_pulse, spec)
    if not isinstance(result, IonspikeError):
        _check_valid_stimulus(result)


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(kind=st.sampled_from(["PulseTrain", "DC", "Triangle"]), data=st.data())
def test_waveform_constructors_on_arbitrary_fields(kind, data):
    if kind == "PulseTrain":
        args = [data.draw(field), data.draw(st.one_of(field, physical)), data.draw(st.one_of(field, physical))]
        kwargs = {k: data.draw(field) for k in data.draw(st.sets(st.sampled_from(
            ["delay", "n_pulses", "baseline", "duration"])))}
        result = outcome(PulseTrain, *args, **kwargs)
    elif kind == "DC":
        result = outcome(DC, data.draw(field), **{k: data.draw(field) for k in data.draw(
            st.sets(st.sampled_from(["delay", "baseline"])))})
    else:
        result = outcome(Triangle, data.draw(field), data.draw(st.one_of(field, physical)),
                         data.draw(st.one_of(field, physical)),
                         **{k: data.draw(field) for k in data.draw(st.sets(st.sampled_from(
                             ["delay", "period", "baseline", "hold_peak"])))})
    if not isinstance(result, IonspikeError):
        _check_valid_stimulus(result)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # float64 -> float32 JAX arrays
@settings(max_examples=EXAMPLES, **SETTINGS)
@given(times=st.one_of(field, hnp.arrays(np.float64, st.integers(0, 5))),
       values=st.one_of(field, hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, max_side=5))),
       as_jax=st.booleans())
def test_sampled_on_arbitrary_arrays(times, values, as_jax):
    if as_jax:
        assume(isinstance(times, np.ndarray) and isinstance(values, np.ndarray))
        times, values = jnp.asarray(times), jnp.asarray(values)
    result = outcome(Sampled, times, values)
    if not isinstance(result, IonspikeError):
        _check_valid_stimulus(result)


# -------------------------------------------------------------------------------------- presets

toml_value = st.recursive(
    st.one_of(st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(), st.text(max_size=12),
              st.sampled_from(["250 MOhm", "1 ms", "0.8 V, 1 ms, 2 ms", "0.8 V", "ekv", "square", "symmetric"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8)
section_table = st.dictionaries(st.one_of(st.sampled_from(sorted({f for fs in FIELDS.values() for f in fs}
                                                                 | {"model", "dt", "pulse", "dc", "duration"})),
                                          st.text(max_size=6)), toml_value, max_size=4)
document = st.fixed_dictionaries({}, optional={
    "name": toml_value, "description": toml_value, "extends": st.one_of(st.sampled_from(presets.names()), toml_value),
    "memristor": st.one_of(section_table, toml_value), "transistor": st.one_of(section_table, toml_value),
    "circuit": st.one_of(section_table, toml_value), "noise": st.one_of(section_table, toml_value),
    "defaults": st.one_of(section_table, toml_value), "junk": toml_value})


def _check_valid_preset(p):
    assert isinstance(p, presets.Preset) and isinstance(p.name, str)
    _check_valid_params(p.params)
    assert p.dt is None or p.dt > 0


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(doc=document)
def test_preset_loader_on_arbitrary_toml_documents(doc):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mine.toml"
        path.write_text(tomli_w.dumps(doc), encoding="utf-8")
        result = outcome(presets.load, str(path))
    if not isinstance(result, IonspikeError):
        _check_valid_preset(result)


@settings(max_examples=60, **SETTINGS)
@given(text=st.one_of(st.text(max_size=80), st.binary(max_size=40)))
def test_preset_loader_on_arbitrary_text(text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mine.toml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        result = outcome(presets.load, str(path))
    if not isinstance(result, IonspikeError):
        _check_valid_preset(result)


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(data=st.data(), n_files=st.integers(1, 4))
def test_extends_chains_load_or_report_their_cycle(data, n_files):
    # each file extends a built-in preset, nothing, or another file by a relative, "./", absolute or
    # symlinked path; following the chain from f0 either ends (a valid preset whose nearest r_c wins)
    # or returns to a file it visited (a PresetError naming the cycle)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        targets, r_c = [], []
        for i in range(n_files):
            target = data.draw(st.one_of(st.just(None), st.sampled_from(["paper", "stochastic"]),
                                         st.integers(0, n_files - 1)), label=f"f{i} extends")
            style = data.draw(st.sampled_from(["name", "dot", "absolute", "link"]), label=f"f{i} style")
            r_c.append(data.draw(st.sampled_from([None, 1e8, 2e8, 5e8]), label=f"f{i} r_c"))
            targets.append(target)
            doc = {"name": f"f{i}"}
            if isinstance(target, int):
                ref = {"name": f"f{target}.toml", "dot": f"./f{target}.toml", "absolute": str(root / f"f{target}.toml"),
                       "link": f"link{target}.toml"}[style]
                if style == "link" and not (root / ref).exists():
                    os.symlink(root / f"f{target}.toml", root / ref)
                doc["extends"] = ref
            elif target is not None:
                doc["extends"] = target
            if r_c[i] is not None:
                doc["circuit"] = {"r_c": f"{r_c[i] / 1e6:g} MOhm"}
            (root / f"f{i}.toml").write_text(tomli_w.dumps(doc), encoding="utf-8")
        seen, i = [], 0
        while isinstance(i, int) and i not in seen:
            seen.append(i)
            i = targets[i]
        result = outcome(presets.load, str(root / "f0.toml"))
    if isinstance(i, int):                        # returned to a visited file: a cycle
        assert isinstance(result, PresetError) and "circular 'extends' chain" in str(result), result
        return
    chain_ends_in_builtin = i is not None
    if not chain_ends_in_builtin:                 # no [memristor] etc. anywhere: a missing section
        assert isinstance(result, IonspikeError) and "missing section" in str(result), result
        return
    _check_valid_preset(result)
    nearest = next((r_c[k] for k in seen if r_c[k] is not None), None)
    assert result.params.circuit.r_c == (nearest if nearest is not None else presets.params(i).circuit.r_c)
    assert result.name == "f0"


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(value=st.one_of(anything, st.builds(Path, st.text(max_size=10))))
def test_preset_resolve_on_arbitrary_values(value):
    result = outcome(presets.resolve, value)
    if not isinstance(result, IonspikeError):
        _check_valid_preset(result)


def test_checks_messages_name_the_argument_value_and_range():
    with pytest.raises(isp.ParameterError, match=r"n = 2.5 \(float\): expected an integer in \[1, inf\)"):
        checks.integer("n", 2.5, 1)
    with pytest.raises(isp.ParameterError, match=r"seed = 1180591620717411303424 is out of range: "
                                                 r"allowed integers in \[0, 9223372036854775807\]"):
        checks.seed(2**70)
    with pytest.raises(isp.ParameterError, match="devices = 'tpu': allowed 'auto'"):
        checks.choice("devices", "tpu", ("auto",))
    with pytest.raises(isp.ParameterError, match="throw = 1 \\(int\\): expected True or False"):
        checks.flag("throw", 1)
    assert checks.positive("dt", 2e-6, unit="s") == 2e-6 and checks.integer("n", np.int64(3), 1) == 3
