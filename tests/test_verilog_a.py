"""The Verilog-A memristor, compiled by the real OpenVAF (openvaf-py), against ionspike's own laws.

* residuals and Jacobian at sampled states (both polarities, ON and OFF, near the onset and the
  bridge): equal to ionspike's rates/current and to JAX's autodiff of them to 1e-9 relative
  outside the smoothing windows; inside them, equal to the law at an input within the window;
* a small trapezoidal transient driven through the compiled residual and Jacobian, with the gate
  node (C_g, R_c) around it, against `simulate`: first DM turn-on (si-exact, 0.8 V DC) and the first
  three spikes (paper, 0.8 V pulses) within 1 %.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import openvaf_py as openvaf   # the real OpenVAF compiler (test extras): never skipped
import pytest

from ionspike import presets, simulate
from ionspike.device.memristor import ionic_rates, resistance
from ionspike.metrics import spike_times
from ionspike.params import replace
from ionspike.precision import x64
from ionspike.spice import SpiceError
from ionspike.spice import verilog_a as va
from ionspike.stimulus import DC, PulseTrain

NODES = ("p", "n", "f", "r")


def _compile(params, tmp_path, name="dm"):
    path = tmp_path / f"{name}.va"
    path.write_text(va.source(params), encoding="utf-8")
    (module,) = openvaf.compile_va(str(path))
    names = [d["name"] for d in module.get_dae_system()["nodes"]]
    assert names == list(NODES)
    return module


class Compiled:
    """The compiled model at one state: residuals (resist, react) and Jacobian, by node name."""

    def __init__(self, module, values: dict):
        self.module = module
        self.base = {k: 0.0 for k in module.param_names}
        self.base.update(module.get_param_defaults())
        self.base["mfactor"] = 1.0
        self.base.update(values)

    def __call__(self, F, R, v_p, v_n):
        p = dict(self.base)
        p.update({"V(f)": F, "V(r)": R, "V(p,n)": v_p - v_n})
        res, jac = self.module.run_init_eval(p)
        resist = np.array([r[0] for r in res])
        react = np.array([r[1] for r in res])
        j_resist, j_react = np.zeros((4, 4)), np.zeros((4, 4))
        for row, col, a, b in jac:
            j_resist[row, col] += a
            j_react[row, col] += b
        return resist, react, j_resist, j_react


def _law(params):
    """ionspike's residual vector (node order p, n, f, r) and its JAX Jacobian, float64."""
    m = params.memristor

    def resist(y):
        F, R, v_p, v_n = y
        v_m = v_p - v_n
        d_f, d_r, _, _ = ionic_rates(F, R, v_m, m)
        i = v_m / resistance(F + R, m)
        return jnp.stack([i, -i, -d_f, -d_r])

    jac = jax.jacfwd(resist)
    return (x64(lambda *y: np.asarray(resist(jnp.asarray(y, jnp.float64)))),
            x64(lambda *y: np.asarray(jac(jnp.asarray(y, jnp.float64)))))


def _symmetric():
    p = presets.params("si-exact")
    return replace(p, polarity="symmetric", V_h=0.3, v_h_reverse_shift=0.1, mu_reverse_factor=0.5)


def _states(params, rng, n=240):
    """(F, R, V_m) samples: OFF and ON, both polarities, near the onset(s) and the bridge."""
    m = params.memristor
    F = rng.uniform(0, 0.9, n)
    R = rng.uniform(0, 0.6, n)
    v = rng.uniform(-1.2, 1.2, n)
    k = n // 6
    v[:k] = float(m.v_h) + rng.uniform(-3, 3, k) * va.W_V                        # around the onset
    R[k:2 * k] = 1.0 - F[k:2 * k] + rng.uniform(-3, 3, k) * va.W_X                # around the bridge
    R[2 * k:3 * k] = 1.0 - F[2 * k:3 * k] + rng.uniform(0.01, 0.4, k)             # ON (x > 1)
    R[3 * k:4 * k] = 1.0 - F[3 * k:4 * k] - rng.uniform(1e-3, 0.05, k)            # just below the bridge
    if m.polarity == "symmetric":
        v[4 * k:5 * k] = -(float(m.v_h) + float(m.v_h_reverse_shift)) + rng.uniform(-3, 3, k) * va.W_V
    v[5 * k:] = rng.uniform(-0.3, 1.5, n - 5 * k)
    return np.clip(F, 0, None), np.clip(R, 0, None), v


def _windows(params, F, R, v):
    """Whether each state lies in a smoothing window of the exported law."""
    m = params.memristor
    x = F + R
    near = (np.abs(v - float(m.v_h)) < va.W_V) | (np.abs(1 - x) < va.W_X) | (np.abs(x) < va.W_X)
    if m.polarity == "symmetric":
        near |= np.abs(-v - float(m.v_h) - float(m.v_h_reverse_shift)) < va.W_V
    return near


@pytest.mark.parametrize("preset", ["paper", "si-exact", "3nm", "symmetric"])
def test_compiled_model_equals_the_laws_and_their_autodiff(preset, tmp_path):
    params = _symmetric() if preset == "symmetric" else presets.params(preset)
    module = _compile(params, tmp_path)
    model = Compiled(module, {})
    law, law_jac = _law(params)
    F, R, v = _states(params, np.random.default_rng(7))
    near = _windows(params, F, R, v)
    assert (~near).sum() >= 200 and near.sum() >= 20
    worst = 0.0
    for i in range(len(F)):
        resist, react, j_res, j_react = model(F[i], R[i], v[i], 0.0)
        np.testing.assert_allclose(react, [0.0, 0.0, F[i], R[i]], rtol=1e-12, atol=0)     # the charges are the state
        assert j_react[2, 2] == 1.0 and j_react[3, 3] == 1.0
        y = (F[i], R[i], v[i], 0.0)
        want = law(*y)
        if not near[i]:
            scale = np.abs(want) + 1e-300
            worst = max(worst, float(np.max(np.abs(resist - want) / np.maximum(scale, 1e-30 * np.max(scale)))))
            np.testing.assert_allclose(resist, want, rtol=1e-9, atol=1e-9 * np.max(np.abs(want)) * 1e-3)
            # Jacobian: columns are node voltages p, n, f, r; the law's are F, R, v_p, v_n
            jw = law_jac(*y)[:, [2, 3, 0, 1]]
            tol = 1e-9 * np.max(np.abs(jw), axis=1, keepdims=True)
            assert np.all(np.abs(j_res - jw) <= tol + 1e-9 * np.abs(jw)), (i, F[i], R[i], v[i], j_res, jw)
        else:
            # inside a window the smoothed law equals the law at a shifted input: bracket it
            lo_hi = []
            for dF in (-va.W_X, 0.0, va.W_X):
                for dv in (-va.W_V, 0.0, va.W_V):
                    lo_hi.append(law(max(F[i] + dF, 0.0), R[i], v[i] + dv, 0.0))
            lo_hi = np.array(lo_hi)
            lo, hi = lo_hi.min(axis=0), lo_hi.max(axis=0)
            slack = 1e-9 * np.abs(lo_hi).max(axis=0)
            assert np.all((resist >= lo - slack) & (resist <= hi + slack)), (i, F[i], R[i], v[i], resist, lo, hi)
    assert worst <= 1e-9


def test_compiled_jacobian_matches_its_own_residual_in_the_windows(tmp_path):
    """Inside the smoothing windows the Jacobian is the smoothed law's (central differences)."""
    params = presets.params("paper")
    model = Compiled(_compile(params, tmp_path), {})
    rng = np.random.default_rng(3)
    for _ in range(30):
        F = rng.uniform(0.1, 0.6)
        R = 1.0 - F + rng.uniform(-0.5, 0.5) * va.W_X
        v = float(params.memristor.v_h) + rng.uniform(-0.5, 0.5) * va.W_V
        _, _, j_res, _ = model(F, R, v, 0.0)
        for col, (dF, dR, dv) in ((2, (1, 0, 0)), (3, (0, 1, 0)), (0, (0, 0, 1))):
            h = (va.W_X if dv == 0 else va.W_V) * 1e-4
            up = model(F + h * dF, R + h * dR, v + h * dv, 0.0)[0]
            dn = model(F - h * dF, R - h * dR, v - h * dv, 0.0)[0]
            fd = (up - dn) / (2 * h)
            np.testing.assert_allclose(j_res[:, col], fd, rtol=2e-5, atol=1e-6 * np.max(np.abs(fd)) + 1e-30)


# ------------------------------------------------------------------------------------ transient
def transient(module, params, v_in, t_end, *, edges=(), h_max=10e-6, stop_spikes=None):
    """Trapezoidal transient of the memristor (compiled) from V_in to the gate, C_g and R_c to
    ground; unknowns (V_g, F, R). Returns the times x = F + R first reaches 1 and V_g crosses V_T
    upward (linear interpolation inside the step)."""
    model = Compiled(module, {})
    c, v_t = params.circuit, float(params.transistor.threshold)
    c_g, g_c = float(c.c_g), 1.0 / float(c.r_c)
    rows = [1, 2, 3]                     # equations of the unknowns' nodes n, f, r

    def parts(y, vin):
        resist, react, j_res, j_react = model(y[1], y[2], vin, y[0])
        f = resist[rows] + np.array([g_c * y[0], 0.0, 0.0])
        q = react[rows] + np.array([c_g * y[0], 0.0, 0.0])
        jf = j_res[np.ix_(rows, rows)] + np.diag([g_c, 0.0, 0.0])
        jq = j_react[np.ix_(rows, rows)] + np.diag([c_g, 0.0, 0.0])
        return f, q, jf, jq

    edges = sorted(e for e in edges if 0 < e < t_end)
    t, y, h = 0.0, np.zeros(3), 1e-7
    dm_on, spikes = [], []
    while t < t_end and (stop_spikes is None or len(spikes) < stop_spikes):
        nxt = next((e for e in edges if e > t + 1e-15), t_end)
        h = min(h, nxt - t)
        vin = v_in(t + 0.5 * h)              # constant within the step (no step straddles an edge)
        f0, q0, _, _ = parts(y, vin)
        y1 = y.copy()
        ok = False
        for _ in range(12):
            f1, q1, jf, jq = parts(y1, vin)
            g = (q1 - q0) / h + 0.5 * (f1 + f0)
            dy = np.linalg.solve(jq / h + 0.5 * jf, -g)
            y1 = y1 + dy
            if np.all(np.abs(dy) <= 1e-10 + 1e-8 * np.abs(y1)):
                ok = True
                break
        change = np.abs(y1 - y)
        if not ok or np.any(change > np.array([5e-3, 5e-3, 5e-3])):
            h *= 0.5
            assert h > 1e-13, "the transient's step collapsed"
            continue
        x0, x1 = y[1] + y[2], y1[1] + y1[2]
        if x0 < 1.0 <= x1 and (not dm_on or True):
            dm_on.append(t + h * (1.0 - x0) / (x1 - x0))
        if y[0] < v_t <= y1[0]:
            spikes.append(t + h * (v_t - y[0]) / (y1[0] - y[0]))
        t, y = t + h, y1
        h = min(2.0 * h, h_max)
    return np.array(dm_on), np.array(spikes)


def test_transient_through_the_compiled_model_turns_on_as_ionspike_at_dc(tmp_path):
    params = presets.params("si-exact")
    module = _compile(params, tmp_path)
    ds = simulate(params, DC(0.8), duration=0.2, deterministic=True, dt=0.5e-6, signals=())
    ref = float(spike_times(ds, 0, "dm_on_time")[0])
    on, _ = transient(module, params, lambda t: 0.8, ref * 1.2, h_max=5e-6)
    assert len(on) >= 1
    assert abs(on[0] - ref) / ref <= 0.01, (on[0], ref)


def test_transient_through_the_compiled_model_spikes_as_ionspike_on_pulses(tmp_path):
    params = replace(presets.params("paper"), N_eff=math.inf)
    module = _compile(params, tmp_path)
    stim = PulseTrain(amplitude=0.8, width=1e-3, period=2e-3)
    ds = simulate(params, stim, duration=0.3, deterministic=True, dt=0.5e-6, signals=())
    ref = np.asarray(spike_times(ds, 0, "spike_time"))[:3]
    assert len(ref) == 3
    edges = [k * 1e-3 for k in range(1, int(ref[-1] / 1e-3) + 3)]
    _, spk = transient(module, params, lambda t: 0.8 if (t % 2e-3) < 1e-3 else 0.0, ref[-1] * 1.05,
                       edges=edges, h_max=10e-6, stop_spikes=3)
    assert len(spk) == 3
    np.testing.assert_allclose(spk, ref, rtol=0.01)


def test_per_neuron_arrays_and_unwritable_values_are_refused():
    p = presets.params("paper")
    with pytest.raises(SpiceError, match="memristor.mu holds 3 values"):
        va.source(replace(p, mu=np.array([1.0, 2.0, 3.0]) * 550))
    with pytest.raises(SpiceError, match="circuit.r_c holds 2 values"):
        va.subcircuit(replace(p, Rc=np.array([1e8, 2e8])))


def test_export_verilog_a_command_writes_a_model_openvaf_compiles(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "dm.va"
    run = subprocess.run([sys.executable, "-m", "ionspike.cli", "export", "verilog-a", "-o", str(out), "--preset",
                          "stochastic"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "N_eff = 40" in run.stderr and "sigma_c2c_ln_mu = 0.15" in run.stderr   # what is not exact is said
    (module,) = openvaf.compile_va(str(out))
    defaults = module.get_param_defaults()
    assert defaults["vh"] == pytest.approx(0.61) and defaults["inv_neff"] == pytest.approx(1 / 40)
    sub = (tmp_path / "dm_1m1t1r.cir").read_text()
    assert f".model dm {va.MODULE} mu=550 " in sub and f".subckt {va.SUBCKT_VA} in vdd g d" in sub
    assert "pre_osdi dm.osdi" in sub
    # a file ionspike did not write is not replaced; a per-neuron parameter is refused with its name
    (tmp_path / "mine.va").write_text("// my model\n")
    run = subprocess.run([sys.executable, "-m", "ionspike.cli", "export", "verilog-a", "-o", str(tmp_path / "mine.va")],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "was not written by this command" in run.stderr
    assert (tmp_path / "mine.va").read_text() == "// my model\n"


def _ngspice_with_osdi():
    import shutil
    import subprocess

    if shutil.which("ngspice") is None or shutil.which("openvaf") is None:
        return False
    probe = subprocess.run(["ngspice", "-b", "-v"], capture_output=True, text=True)
    version = "".join(ch for ch in probe.stdout.split("ngspice-")[-1][:3] if ch.isdigit())
    return version.isdigit() and int(version) >= 39


@pytest.mark.skipif(not _ngspice_with_osdi(), reason="needs the openvaf compiler and an ngspice built with OSDI "
                    "(Debian's ngspice 39 here is built without it)")
def test_osdi_deck_spikes_as_ionspike(tmp_path):
    import subprocess

    params = replace(presets.params("paper"), N_eff=math.inf)
    exported = va.export(params)
    (tmp_path / "dm.va").write_text(exported.source)
    (tmp_path / "sub.cir").write_text(exported.subcircuit)
    subprocess.run(["openvaf", "dm.va"], cwd=tmp_path, check=True)
    deck = ["* osdi check", ".include sub.cir", "Vdd vdd 0 0.5", "Vin in 0 PULSE(0 0.8 0 1n 1n 0.999m 2m)",
            f"X1 in vdd g d {va.SUBCKT_VA}", ".tran 1u 130m 0 2u uic", ".control", "pre_osdi dm.osdi", "run",
            "wrdata out.txt v(g)", ".endc", ".end"]
    (tmp_path / "deck.cir").write_text("\n".join(deck) + "\n")
    subprocess.run(["ngspice", "-b", "deck.cir"], cwd=tmp_path, check=True, capture_output=True)
    t, vg = np.loadtxt(tmp_path / "out.txt", unpack=True)
    v_t = float(params.transistor.threshold)
    up = np.where((vg[:-1] < v_t) & (vg[1:] >= v_t))[0]
    ds = simulate(params, PulseTrain(amplitude=0.8, width=1e-3, period=2e-3), duration=0.13, deterministic=True,
                  signals=())
    ref = np.asarray(spike_times(ds, 0, "spike_time"))
    assert len(up) >= 1 and abs(t[up[0]] - ref[0]) / ref[0] <= 0.01
