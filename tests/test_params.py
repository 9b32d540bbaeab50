import dataclasses

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


def test_paper_preset_matches_physics_md_table():
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
