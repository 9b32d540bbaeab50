"""Run ngspice in batch mode, read its raw output, return ionspike's Dataset schema."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import xarray as xr

from ionspike import circuit
from ionspike.errors import IonspikeError
from ionspike.events import crossing_times
from ionspike.params import NeuronParams
from ionspike.precision import x64
from ionspike.spice import deck

INSTALL_HINT = ("install ngspice: 'apt-get install ngspice' (Debian/Ubuntu), 'brew install ngspice' (macOS) or "
                "'conda install -c conda-forge ngspice'; or point IONSPIKE_NGSPICE at the executable")


class NgspiceMissing(IonspikeError, RuntimeError):
    """ngspice is not installed (or not on PATH)."""


class NgspiceError(IonspikeError, RuntimeError):
    """ngspice failed: the message carries ngspice's own error lines."""


def executable() -> str:
    exe = os.environ.get("IONSPIKE_NGSPICE") or shutil.which("ngspice")
    if not exe or not Path(exe).exists():
        raise NgspiceMissing(f"ngspice was not found on PATH; {INSTALL_HINT}")
    return exe


def read_raw(path: str | Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Parse an ASCII ngspice raw file: (time, {variable name: values})."""
    text = Path(path).read_text()
    head, _, body = text.partition("Values:")
    names, n_vars, n_points, in_vars = [], 0, 0, False
    for line in head.splitlines():
        if line.startswith("No. Variables:"):
            n_vars = int(line.split(":")[1])
        elif line.startswith("No. Points:"):
            n_points = int(line.split(":")[1])
        elif line.startswith("Variables:"):
            in_vars = True
        elif in_vars and line.strip():
            names.append(line.split()[1].lower())
    tokens = body.split()
    data = np.array(tokens, dtype=float).reshape(-1, n_vars + 1)[:, 1:]
    if data.shape[0] != n_points or len(names) != n_vars:
        raise NgspiceError(f"unexpected raw file layout in {path}: {data.shape[0]} points, {len(names)} variables")
    cols = {name: data[:, j] for j, name in enumerate(names)}
    return cols["time"], cols


def run_netlist(text: str, *, timeout: float = 3600.0) -> tuple[np.ndarray, dict[str, np.ndarray], str]:
    """Run ``ngspice -b`` on a deck; return (time, columns, ngspice's output).

    The deck must pass :func:`ionspike.spice.deck.check` (raises :class:`SpiceError` otherwise):
    nothing but the netlist writer's own lines reaches ngspice.
    """
    deck.check(text)
    exe = executable()
    with tempfile.TemporaryDirectory(prefix="ionspike-ngspice-") as d:
        path, raw = Path(d) / "deck.cir", Path(d) / "out.raw"
        path.write_text(text, encoding="utf-8")
        env = dict(os.environ, SPICE_ASCIIRAWFILE="1")
        try:
            proc = subprocess.run([exe, "-b", "-r", str(raw), str(path)], capture_output=True, text=True,
                                  timeout=timeout, env=env, cwd=d)
        except subprocess.TimeoutExpired:
            raise NgspiceError(f"ngspice did not finish within {timeout:g} s") from None
        log = proc.stdout + proc.stderr
        errors = [ln.strip() for ln in log.splitlines()
                  if ln.lower().lstrip().startswith(("error", "fatal")) or "timestep too small" in ln.lower()]
        if proc.returncode != 0 or errors or not raw.exists() or raw.stat().st_size == 0:
            shown = "\n".join(errors[:12]) or log.strip()[-2000:]
            raise NgspiceError(f"ngspice failed (exit {proc.returncode}):\n{shown}")
        t, cols = read_raw(raw)
    return t, cols, log


def _integrate(t, y):
    return np.trapezoid(y, t, axis=0) if hasattr(np, "trapezoid") else np.trapz(y, t, axis=0)


def to_dataset(t, cols, p: NeuronParams, *, n: int, per_copy_input: bool, attrs: dict) -> xr.Dataset:
    """ngspice columns -> the Dataset schema of :func:`ionspike.simulate` (same names, units)."""
    vin = np.stack([cols[f"v(in{i})" if per_copy_input else "v(in)"] for i in range(n)], axis=1)
    vg = np.stack([cols[f"v(g{i})"] for i in range(n)], axis=1)
    vd = np.stack([cols[f"v(d{i})"] for i in range(n)], axis=1)
    F = np.stack([cols[f"v(x{i}.f)"] for i in range(n)], axis=1)
    R = np.stack([cols[f"v(x{i}.r)"] for i in range(n)], axis=1)
    c = p.circuit
    i_load = (c.v_dd - vd) / c.r_l
    dvd = np.gradient(vd, t, axis=0) if t.size > 1 else np.zeros_like(vd)
    i_d = i_load - c.c_l * dvd
    power = {k: np.asarray(v) for k, v in circuit.element_powers(
        jnp.asarray(vin), jnp.asarray(vg), jnp.asarray(vd), jnp.asarray(i_d), jnp.asarray(F + R), p).items()}
    vt = float(np.max(p.transistor.threshold))
    spikes = [crossing_times(t, vg[:, i] - vt) for i in range(n)]
    turns = [crossing_times(t, F[:, i] + R[:, i] - 1.0, rearm=-circuit.DM_OFF_MARGIN) for i in range(n)]

    def pad(rows):
        k = max(1, max((len(r) for r in rows), default=0))
        out = np.full((n, k), np.nan)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out

    units = {"V_in": "V", "F": "1", "R": "1", "V_g": "V", "V_d": "V", "I_d": "A"}
    data = {name: (("time", "neuron"), arr, {"units": units[name]})
            for name, arr in (("V_in", vin), ("F", F), ("R", R), ("V_g", vg), ("V_d", vd), ("I_d", i_d))}
    data.update({
        "spike_time": (("neuron", "spike"), pad(spikes), {"units": "s"}),
        "spike_count": ("neuron", np.array([len(s) for s in spikes]), {"units": "1"}),
        "dm_on_time": (("neuron", "dm_event"), pad(turns), {"units": "s"}),
        "dm_on_count": ("neuron", np.array([len(s) for s in turns]), {"units": "1"}),
        # energies by trapezoidal integration of the traces (J)
        **{f"energy_{k}": ("neuron", _integrate(t, w), {"units": "J"}) for k, w in power.items()},
        "energy_stored_cg": ("neuron", 0.5 * c.c_g * (vg[-1] ** 2 - vg[0] ** 2), {"units": "J"}),
        "energy_stored_cl": ("neuron", 0.5 * c.c_l * (vd[-1] ** 2 - vd[0] ** 2), {"units": "J"}),
    })
    ds = xr.Dataset(data, coords={"time": ("time", t, {"units": "s"}), "neuron": np.arange(n)})
    ds.attrs.update(attrs)
    ds.attrs["spike_threshold_V"] = vt
    return ds


@x64
def run(text: str, params: NeuronParams, *, n: int, per_copy_input: bool = False, attrs: dict | None = None,
        timeout: float = 3600.0) -> xr.Dataset:
    """Run an exported netlist with the real ngspice and return the :func:`ionspike.simulate` schema.

    Raises:
        SpiceError: the deck holds a line the netlist writer does not produce (see :mod:`ionspike.spice.deck`).
        NgspiceMissing: ngspice is not installed (with the install hint).
        NgspiceError: ngspice reported an error or did not converge (its own message).
    """
    t, cols, _ = run_netlist(text, timeout=timeout)
    base = {"engine": "ngspice", "params_json": json.dumps(params.to_dict()), "stimulus_json": "{}",
            "dt_s": float("nan"), "duration_s": float(t[-1]), "seed": 0, "preset": ""}
    base.update(attrs or {})
    return to_dataset(t, cols, params, n=n, per_copy_input=per_copy_input, attrs=base)


@x64
def validate(params, stimulus, *, duration: float, dt: float | None = None, n: int = 1, seed: int = 0,
             model: str = "mosfet") -> tuple[dict, xr.Dataset, xr.Dataset]:
    """Run ionspike and ngspice on the same circuit and input; report their agreement.

    Returns ``(report, ionspike Dataset, ngspice Dataset)``; the report has per-neuron
    first-spike times, spike counts, the largest relative ISI difference and the RMS of the
    V_g difference relative to the V_g peak.
    """
    from ionspike.presets import resolve
    from ionspike.simulate import DEFAULT_DT_S, simulate
    from ionspike.spice.netlist import check_copies, netlist
    from ionspike.units import parse_quantity

    n = check_copies(n)
    preset = resolve(params)
    p = preset.params
    p = p.deterministic() if np.isfinite(np.min(p.noise.n_eff)) or np.max(p.noise.sigma_c2c_ln_mu) > 0 else p
    duration = parse_quantity(duration, "s", name="duration")
    dt = parse_quantity(dt, "s", name="dt") if dt is not None else (preset.dt or DEFAULT_DT_S)
    ours = simulate(p, stimulus, duration=duration, dt=dt, n=n, seed=seed, signals=("V_g",),
                    record_every=max(1, int(round(10e-6 / dt))))
    text = netlist(p, stimulus, duration=duration, dt=dt, n=n, mu_scale=ours.mu_scale_d2d.values, model=model)
    theirs = run(text, p, n=n, per_copy_input=stimulus.size() > 1,
                 attrs={"dt_s": dt, "duration_s": duration, "seed": seed, "preset": preset.name if preset else ""})
    report = {"neurons": []}
    for i in range(n):
        a = ours.spike_time.values[i][np.isfinite(ours.spike_time.values[i])]
        b = theirs.spike_time.values[i][np.isfinite(theirs.spike_time.values[i])]
        m = min(a.size, b.size)
        isi_a, isi_b = np.diff(a[:m]), np.diff(b[:m])
        isi_err = float(np.max(np.abs(isi_a - isi_b) / isi_b)) if isi_b.size else None
        vg_b = np.interp(ours.time.values, theirs.time.values, theirs.V_g.values[:, i])
        vg_a = ours.V_g.values[:, i]
        peak = max(float(np.max(np.abs(vg_b))), 1e-30)
        report["neurons"].append({
            "first_spike_s": {"ionspike": float(a[0]) if a.size else None, "ngspice": float(b[0]) if b.size else None},
            "first_spike_rel_diff": float(abs(a[0] - b[0]) / b[0]) if a.size and b.size else None,
            "spike_count": {"ionspike": int(a.size), "ngspice": int(b.size)},
            "isi_max_rel_diff": isi_err,
            "vg_rms_rel_peak": float(np.sqrt(np.mean((vg_a - vg_b) ** 2)) / peak),
        })
    return report, ours, theirs
