import dataclasses
import re

import numpy as np
import pytest

import ionspike as isp
from ionspike import presets
from ionspike.errors import ParameterError, PresetError, UnitError
from ionspike.params import from_dict


def test_every_builtin_preset_loads_and_has_a_time_step():
    assert set(presets.names()) >= {"paper", "stochastic", "si-exact", "65nm", "3nm"}
    for name in presets.names():
        p = presets.load(name)
        assert p.dt and p.dt > 0
        assert p.params.circuit.c_g > 0


def test_paper_preset_matches_the_documented_table():
    p = presets.params("paper")
    m, c = p.memristor, p.circuit
    assert (m.mu, m.v_h, m.alpha, m.beta, m.gamma1, m.gamma2, m.lam) == (550, 0.5, 0.01, 20, 600, 5, 0.2)
    assert (m.r_on, m.r_off, c.c_g, c.r_c) == (1e6, 1e12, 10e-12, 250e6)
    # EKV beta = 2 n K with K = 3.75e-4 A/V^2
    assert p.transistor.beta == pytest.approx(2 * p.transistor.n * 3.75e-4)


def test_derived_presets_override_only_what_they_list():
    base, si = presets.params("paper"), presets.params("si-exact")
    assert (si.memristor.mu, si.memristor.v_h) == (150, 0)
    assert si.memristor.gamma1 == base.memristor.gamma1
    assert np.isinf(si.noise.n_eff)
    c = presets.params("3nm")
    assert c.memristor.mu == pytest.approx(base.memristor.mu * 1e5)
    assert c.circuit.r_c * c.circuit.c_g == pytest.approx(1e-6, rel=0.01)
    assert presets.load("si-exact").defaults == {"dc": "0.8 V", "duration": "60 ms"}


def test_overrides_by_alias_dotted_and_bare_name():
    p = presets.params("paper", Rc="1 GOhm")
    assert p.circuit.r_c == 1e9
    q = isp.replace(p, **{"memristor.mu": "300 1/(s*V)"}, gamma2=2.0)
    assert (q.memristor.mu, q.memristor.gamma2) == (300, 2)


def test_user_toml_file_extends_a_preset(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text('extends = "paper"\n[circuit]\nr_c = "100 MOhm"\n')
    p = presets.load(str(f))
    assert p.params.circuit.r_c == 100e6 and p.params.memristor.mu == 550
    assert p.name == "mine"                      # not labelled with the parent's name
    g = tmp_path / "child.toml"
    g.write_text('extends = "mine.toml"\n[memristor]\nmu = "300 1/(s*V)"\n')   # relative to its own folder
    q = presets.load(str(g))
    assert q.params.circuit.r_c == 100e6 and q.params.memristor.mu == 300 and q.name == "child"


@pytest.mark.parametrize("name, value, fragment", [
    ("Rc", "-1 Ohm", "circuit.r_c"), ("Rc", 0.0, "circuit.r_c"), ("Cg", "0 F", "circuit.c_g"),
    ("Cg", -1e-12, "circuit.c_g"), ("Ron", -5.0, "memristor.r_on"), ("N_eff", 0.0, "noise.n_eff"),
])
def test_nonpositive_resistance_or_capacitance_names_field_value_and_range(name, value, fragment):
    with pytest.raises(ParameterError) as info:
        presets.params("paper", **{name: value})
    msg = str(info.value)
    assert fragment in msg and "out of range" in msg and "allowed" in msg


def test_r_off_must_exceed_r_on():
    with pytest.raises(ParameterError, match="r_off"):
        presets.params("paper", Roff="1 kOhm")


def test_unknown_preset_and_parameter_and_malformed_unit():
    with pytest.raises(PresetError, match="unknown preset 'nope'.*paper"):
        presets.load("nope")
    with pytest.raises(ParameterError, match="unknown parameter 'Rx'"):
        presets.params("paper", Rx=1.0)
    with pytest.raises(UnitError, match="250 Mohms\\?"):
        presets.params("paper", Rc="250 Mohms?")


def test_from_dict_rejects_unknown_fields_and_missing_sections():
    d = presets.params("paper").to_dict()
    d["circuit"]["r_x"] = 1.0
    with pytest.raises(ParameterError, match="r_x"):
        from_dict(d)
    d = presets.params("paper").to_dict()
    del d["memristor"]
    with pytest.raises(ParameterError, match="memristor"):
        from_dict(d)


def test_to_dict_round_trips_through_json_values():
    p = presets.params("si-exact")
    q = from_dict(p.to_dict())
    assert dataclasses.asdict(q.memristor) == dataclasses.asdict(p.memristor)
    assert np.isinf(q.noise.n_eff)


def test_per_neuron_arrays_are_validated_elementwise():
    with pytest.raises(ParameterError, match="circuit.r_c"):
        isp.replace(presets.params("paper"), Rc=np.array([1e8, -1.0]))


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_extends_cycles_are_reported_whatever_the_spelling_of_the_path(tmp_path):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    _write(a, f'extends = "{b}"\n')                           # absolute paths (was a RecursionError)
    _write(b, f'extends = "{tmp_path}/sub/../a.toml"\n')       # the same file by another spelling
    with pytest.raises(PresetError, match="circular 'extends' chain") as info:
        presets.load(str(a))
    assert str(a) in str(info.value) and str(b) in str(info.value)
    with pytest.raises(PresetError, match="circular"):
        presets.load(_write(tmp_path / "self.toml", 'extends = "./self.toml"\n'))
    (tmp_path / "link.toml").symlink_to(tmp_path / "c.toml")
    with pytest.raises(PresetError, match="circular"):
        presets.load(_write(tmp_path / "c.toml", 'extends = "link.toml"\n'))


@pytest.mark.parametrize("text, fragment", [
    ("extends = 5\n", "extends = 5 (int): expected a string"),
    ('extends = ["paper"]\n', "extends = ['paper'] (list): expected a string"),
    ('extends = "paper"\ncircuit = 5\n', "circuit = 5 (int): expected a table [circuit]"),
    ('extends = "paper"\n[circuit]\nr_c = [1e8, 2e8]\n', "circuit.r_c = [100000000.0, 200000000.0] (list)"),
    ('extends = "paper"\n[circuit]\nr_c = true\n', "circuit.r_c = True (bool)"),
    ('extends = "paper"\n[memristor]\npolarity = 1\n', "memristor.polarity = 1 (int): expected a string"),
    ('extends = "paper"\ndefaults = "fast"\n', "defaults = 'fast' (str): expected a table [defaults]"),
    ('extends = "paper"\n[defaults]\npulse = 0.8\n', "defaults.pulse = 0.8 (float): expected a string"),
    ('extends = "paper"\n[defaults]\ndt = "-2 us"\n', "defaults.dt = '-2 us' is out of range"),
    ('extends = "paper"\n[defaults]\npulse = "0.8 V, 1 ms"\n', "expected AMPLITUDE,WIDTH,PERIOD"),
    ('extends = "paper"\n[defaults]\npulse = "0.8V,1ms,2ms"\ndc = "1 V"\n', "both pulse and dc"),
    ('extends = "paper"\nnoize = 1\n', "unknown key(s) ['noize']"),
    ("a = [" * 3000 + "]" * 3000 + "\n", "invalid TOML"),
])
def test_malformed_preset_files_name_the_file_and_the_key(tmp_path, text, fragment):
    path = _write(tmp_path / "bad.toml", text)
    with pytest.raises(isp.IonspikeError) as info:
        presets.load(path)
    assert fragment in str(info.value)
    assert "bad.toml" in str(info.value) or "defaults.pulse" in str(info.value)


def test_unreadable_preset_paths_are_preset_errors(tmp_path):
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe\x00")
    for path, fragment in [(tmp_path / "binary.toml", "cannot be read"), (tmp_path, "is not a file"),
                           ("x\0y.toml", "cannot be read"), ("missing.toml", "does not exist")]:
        with pytest.raises(PresetError, match=fragment):
            presets.load(path)


def test_resolve_is_the_one_place_a_preset_is_found(tmp_path):
    by_name = presets.resolve("paper")
    assert by_name.name == "paper" and by_name.dt == 2e-6
    assert presets.resolve(by_name) is by_name
    custom = presets.resolve(by_name.params)
    assert custom.params is by_name.params and custom.name == "" and custom.dt is None
    path = tmp_path / "mine.toml"
    path.write_text('extends = "paper"\n[circuit]\nr_c = "1 GOhm"\n')
    assert presets.resolve(path).params.circuit.r_c == 1e9           # a pathlib.Path
    for bad in (5, None, b"paper", ["paper"]):
        with pytest.raises(PresetError, match="expected NeuronParams, a Preset, a built-in preset name"):
            presets.resolve(bad)


@pytest.mark.parametrize("value, fragment", [
    (np.zeros((2, 2)), "circuit.r_c: expected a number or a non-empty 1-D array"),
    ([], "circuit.r_c: expected a number or a non-empty 1-D array"),
    (np.array([]), "got shape (0,)"),
    (True, "circuit.r_c = True: expected a number in ohm, not a bool"),
    (np.array([True, False]), "expected numbers (SI, ohm), got an array of bool"),
    (["1 GOhm", "x"], "circuit.r_c[1] = 'x' is not a quantity"),
    (None, "circuit.r_c = None"),
    (1j, "circuit.r_c = 1j"),
])
def test_replace_refuses_values_of_the_wrong_type_or_shape(value, fragment):
    with pytest.raises((ParameterError, UnitError)) as info:
        isp.replace(presets.params("paper"), Rc=value)
    assert fragment in str(info.value)


def test_replace_takes_lists_and_jax_arrays_as_per_neuron_values():
    import jax.numpy as jnp

    p = isp.replace(presets.params("paper"), Rc=[1e8, "1 GOhm"], Cg=jnp.array([1e-11, 2e-11]))
    np.testing.assert_array_equal(p.circuit.r_c, [1e8, 1e9])
    with pytest.raises(ParameterError, match=r"memristor: per-neuron arrays have different lengths"):
        isp.replace(presets.params("paper"), Ron=[1e5, 2e5], Roff=[1e9, 1e10, 1e11])
    with pytest.raises(ParameterError, match="circuit.r_c = -1 ohm is out of range"):
        isp.replace(presets.params("paper"), Rc=jnp.array([1e8, -1.0]))


def test_from_dict_round_trips_per_neuron_values_and_refuses_non_tables():
    p = isp.replace(presets.params("paper"), N_eff=[30.0, float("inf")], Rc=[1e8, 2e8])
    q = from_dict(p.to_dict())                     # lists with "inf", as to_dict writes them
    assert np.isinf(q.noise.n_eff[1]) and list(q.circuit.r_c) == [1e8, 2e8]
    for data, fragment in [([], "params: expected a table of sections, got list"),
                           ({"memristor": 1, "transistor": {}, "circuit": {}}, "params.memristor: expected a table"),
                           ({"memristor": {}, "transistor": {"model": ["ekv"]}, "circuit": {}},
                            "params.transistor.model = ['ekv']: allowed 'ekv', 'square'")]:
        with pytest.raises(ParameterError, match=re.escape(fragment)):
            from_dict(data)


def test_parse_assignments_refuses_empty_and_repeated_names():
    from ionspike.params import parse_assignments

    assert parse_assignments(["Rc = 1 GOhm", "mu=300"]) == {"Rc": "1 GOhm", "mu": "300"}
    for items, fragment in [(["=1"], "the name before '=' is empty"), (["Rc=1", "Rc=2"], "given twice"),
                            (["Rc"], "expected NAME=VALUE"), ([5], "expected NAME=VALUE")]:
        with pytest.raises(ParameterError, match=re.escape(fragment)):
            parse_assignments(items)
