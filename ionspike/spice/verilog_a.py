"""Verilog-A export of the diffusive memristor, and a 1M1T1R subcircuit around it.

The model is written for compilers of well-posed compact models (OpenVAF, and through it
ngspice's OSDI, VACASK; Spectre, Xyce and Qucs read the same source):

* Two terminals ``p`` (input, top electrode) and ``n`` (gate side). The ionic state lives on two
  internal nodes, ``F = V(f)`` and ``R = V(r)`` (dimensionless, "volts"), each the charge of a
  1 F capacitor, so that ``I(f) <+ ddt(V(f)) - dF/dt`` holds the state equation (the same
  convention as ionspike's ngspice deck). No hidden state, no ``$abstime``, no ``x = x + dxdt*dt``.
* The laws are ionspike's (:mod:`ionspike.device.memristor`, docs/model.md §3.2-3.5): growth
  ``mu [V_m - v_h]_+ / (alpha + |1 - x|)`` (a symmetric device also grows for ``V_m < 0`` with its
  reverse onset and rate), dissolution ``(gamma1 + beta) F``, transfer ``beta F``, residue decay
  ``gamma2 R``, resistance ``max(r_on x̄ + r_off e^{-x̄/lam}(e^{-(1-x̄)/lam} - 1)/(e^{-1/lam} - 1), r_on)``,
  ``x̄ = clip(F + R, 0, 1)``.
* **Smoothing** (a Newton solver needs continuous derivatives; docs/model.md §3.14): the three kinks of the law are
  replaced by C¹ blends that equal the law exactly outside a window and stay within it inside:
  ``max(e, 0)`` of the drift onset becomes ``(e + w_v)²/(4 w_v)`` for ``|e| < w_v`` (the smoothed
  drive lies between the law's at ``V_m`` and at ``V_m + w_v``); ``|1 - x|`` of the gap factor becomes
  ``(1 - x)²/(2 w_x) + w_x/2`` for ``|1 - x| < w_x`` (larger by at most ``w_x/2``); each side of
  ``clip(x, 0, 1)`` is blended the same way as the onset (``x̄`` moves by at most ``w_x/4``, so the
  smoothed resistance is the law's at a state within ``w_x`` of ``x``). Defaults: ``w_v = 1 mV``,
  ``w_x = 1e-4``. A symmetric device's forward and reverse terms are summed, which equals the
  law wherever ``v_h`` and ``v_h + v_h_reverse_shift`` exceed ``w_v``.
* **Noise**: the chemical-Langevin intensity of docs/model.md §3.4 as ``white_noise()`` current
  sources on the state nodes, one-sided PSD ``2 (a + (gamma1 + beta) F)/N_eff`` on ``f`` and
  ``2 (beta F + gamma2 R)/N_eff`` on ``r`` (a white process of two-sided intensity ``q`` has
  one-sided PSD ``2q``); ``inv_neff = 1/N_eff`` (0: none). Only transient-noise analyses use it
  (Spectre's ``trannoise``, Xyce's); ngspice's OSDI path and every DC/transient analysis ignore
  ``white_noise()``: there the model is the deterministic law. The cycle-to-cycle spread of mu
  has no compact-model form and is not exported; the device-to-device spread is the instance
  parameter ``mu`` (one value per instance).
* The polarity switch ``symmetric`` is a real parameter restricted to {0, 1} (``exclude (0:1)``):
  openvaf-py's interpreter misreads integer parameters (measured: an integer ``symmetric = 1``
  evaluated as 0), and a real flag means the same to every compiler.

The 1M1T1R subcircuit (:func:`subcircuit`) wires the model with the simulator's own MOSFET
(SPICE level 1, ``kp = 2K``: the same mapping and the same limits as the ngspice deck,
:mod:`ionspike.spice.netlist`), ``C_g``, ``R_c`` and the load, in ngspice syntax.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ionspike import __version__
from ionspike.params import NeuronParams
from ionspike.spice.deck import SpiceError, comment, number
from ionspike.spice.netlist import level1

MODULE = "ionspike_dm"
SUBCKT_VA = "neuron1m1t1r_va"
#: smoothing widths of the exported law (see the module docstring): drift onset, V; ionic state
W_V = 1e-3
W_X = 1e-4


@dataclass(frozen=True)
class VerilogA:
    """An exported model: the Verilog-A source, the ngspice subcircuit that uses it, and notes on
    what the export dropped or approximates (empty: nothing)."""

    source: str
    subcircuit: str
    notes: tuple[str, ...]


def _scalar(value, name: str) -> float:
    a = np.asarray(value, float)
    if a.size != 1:
        raise SpiceError(f"{name} holds {a.size} values (a per-neuron array): a compact model has one value per "
                         "parameter; export one model per value (the device spread of mu is an instance parameter)")
    v = float(a.flat[0])
    if not math.isfinite(v):
        raise SpiceError(f"{name} = {v!r} cannot be written to a Verilog-A model: allowed finite numbers")
    return v


def memristor_parameters(params: NeuronParams) -> dict:
    """The model's parameter values (Verilog-A name -> value, SI units) for ``params``."""
    m, noise = params.memristor, params.noise
    vals = {"mu": _scalar(m.mu, "memristor.mu"), "vh": _scalar(m.v_h, "memristor.v_h"),
            "alpha": _scalar(m.alpha, "memristor.alpha"), "beta": _scalar(m.beta, "memristor.beta"),
            "gamma1": _scalar(m.gamma1, "memristor.gamma1"), "gamma2": _scalar(m.gamma2, "memristor.gamma2"),
            "lam": _scalar(m.lam, "memristor.lam"), "ron": _scalar(m.r_on, "memristor.r_on"),
            "roff": _scalar(m.r_off, "memristor.r_off"),
            "vhr": _scalar(m.v_h_reverse_shift, "memristor.v_h_reverse_shift"),
            "mur": _scalar(m.mu_reverse_factor, "memristor.mu_reverse_factor"),
            "symmetric": 1 if m.polarity == "symmetric" else 0}
    n_eff = np.asarray(noise.n_eff, float)
    if n_eff.size != 1:
        raise SpiceError(f"noise.n_eff holds {n_eff.size} values (a per-neuron array): allowed one value")
    vals["inv_neff"] = 0.0 if math.isinf(float(n_eff.flat[0])) else 1.0 / float(n_eff.flat[0])
    vals["wv"], vals["wx"] = W_V, W_X
    return vals


# name -> (unit, range in Verilog-A syntax, meaning); the order of the model's parameter list
_PARAMETERS = {
    "mu": ("1/(V s)", "[0:inf)", "filament growth rate per volt of drive above the onset"),
    "vh": ("V", "[0:100]", "drift-onset voltage"),
    "alpha": ("1", "(0:10]", "gap regulariser of the growth law"),
    "beta": ("1/s", "[0:inf)", "filament-to-residue transfer rate"),
    "gamma1": ("1/s", "[0:inf)", "filament dissolution rate"),
    "gamma2": ("1/s", "[0:inf)", "residue decay rate"),
    "lam": ("1", "(0:100]", "steepness of the resistance law"),
    "ron": ("Ohm", "(0:inf)", "ON resistance"),
    "roff": ("Ohm", "(0:inf)", "OFF resistance"),
    "vhr": ("V", "[-100:100]", "reverse drift onset minus vh (symmetric devices)"),
    "mur": ("1", "(0:inf)", "reverse growth rate over mu (symmetric devices)"),
    "symmetric": ("-", "[0:1] exclude (0:1)", "1: grows for both polarities of V(p,n); 0: only for V(p,n) > 0"),
    "inv_neff": ("1", "[0:inf)", "1/N_eff of the chemical-Langevin noise (0: none)"),
    "wv": ("V", "(0:1]", "smoothing width of the drift onset"),
    "wx": ("1", "(0:0.1]", "smoothing width of the gap factor and of clip(x, 0, 1)"),
}


def _check_ranges(vals: dict) -> None:
    for name, (_, rng, _) in _PARAMETERS.items():
        v = vals[name]
        rng = rng.split(" exclude ")[0]
        lo_open, hi_open = rng[0] == "(", rng[-1] == ")"
        lo_s, hi_s = rng[1:-1].split(":")
        lo = float(lo_s)
        hi = math.inf if hi_s == "inf" else float(hi_s)
        if (v < lo or (lo_open and v == lo)) or (v > hi or (hi_open and v == hi)):
            raise SpiceError(f"{name} = {v:g} is out of range for the Verilog-A model: allowed {rng}")


def source(params: NeuronParams, *, title: str = "") -> str:
    """The Verilog-A source of the diffusive memristor with ``params``' values as defaults."""
    vals = memristor_parameters(params)
    _check_ranges(vals)
    decl = []
    for name, (unit, rng, meaning) in _PARAMETERS.items():
        decl.append(f"    parameter real {name} = {number(vals[name])} from {rng};  // {unit}: {meaning}")
    head = [f"// ionspike {__version__}: Ag diffusive memristor (filament F + residue R), Verilog-A",
            "//" + comment(title)[1:] if title else "// exported by ionspike.spice.verilog_a"]
    body = f"""//
// Laws (ionspike docs/model.md 3.2-3.5), x = F + R, V_m = V(p,n):
//   dF/dt = mu [V_m - vh]_+ / (alpha + |1 - x|) - (gamma1 + beta) F
//   dR/dt = beta F - gamma2 R
//   I(p,n) = V_m / R_d,  R_d = max(ron xb + roff e^(-xb/lam) (e^(-(1-xb)/lam) - 1)/(e^(-1/lam) - 1), ron),
//   xb = clip(x, 0, 1)
// F and R are the voltages of the internal nodes f and r (1 F each: I(f) = dF/dt - rate).
// Smoothing (exact outside the windows): [e]_+ -> (e + wv)^2/(4 wv) for |e| < wv;
// |1 - x| -> (1 - x)^2/(2 wx) + wx/2 for |1 - x| < wx; clip(x, 0, 1) blended like [.]_+ with width wx.
// Noise: white_noise() with the chemical-Langevin intensity (one-sided PSD 2 q / N_eff); ignored by
// DC/transient analyses and by ngspice's OSDI (there the law is deterministic).

`include "disciplines.vams"

module {MODULE}(p, n);
    inout p, n;
    electrical p, n;
    electrical f, r;   // internal: filament F = V(f), residue R = V(r), dimensionless

{chr(10).join(decl)}

    real vm, x, drive, gap, growth, xb, rd;

    // max(e, 0), blended over |e| < w (C1; exact outside; between max(e, 0) and max(e + w, 0))
    analog function real ramp;
        input e, w;
        real e, w;
        begin
            if (e >= w)
                ramp = e;
            else if (e <= -w)
                ramp = 0.0;
            else
                ramp = (e + w) * (e + w) / (4.0 * w);
        end
    endfunction

    // |u|, blended over |u| < w (C1; exact outside; larger by at most w/2)
    analog function real smooth_abs;
        input u, w;
        real u, w;
        begin
            if (u >= w || u <= -w)
                smooth_abs = abs(u);
            else
                smooth_abs = u * u / (2.0 * w) + 0.5 * w;
        end
    endfunction

    analog begin
        vm = V(p, n);
        x = V(f) + V(r);
        // drift drive (1/s): mu [V_m - vh]_+, and for a symmetric device mu mur [-V_m - vh - vhr]_+
        drive = mu * ramp(vm - vh, wv);
        if (symmetric > 0.5)
            drive = drive + mu * mur * ramp(-vm - vh - vhr, wv);
        gap = alpha + smooth_abs(1.0 - x, wx);
        growth = drive / gap;
        xb = x - ramp(x - 1.0, wx) + ramp(-x, wx);
        rd = max(ron * xb + roff * exp(-xb / lam) * (exp(-(1.0 - xb) / lam) - 1.0) / (exp(-1.0 / lam) - 1.0), ron);
        I(p, n) <+ vm / rd;
        I(f) <+ ddt(V(f)) - growth + (gamma1 + beta) * V(f);
        I(r) <+ ddt(V(r)) - beta * V(f) + gamma2 * V(r);
        I(f) <+ white_noise(2.0 * inv_neff * max(growth + (gamma1 + beta) * V(f), 0.0), "filament");
        I(r) <+ white_noise(2.0 * inv_neff * max(beta * V(f) + gamma2 * V(r), 0.0), "residue");
    end
endmodule
"""
    return "\n".join(head) + "\n" + body


def subcircuit(params: NeuronParams, *, va_file: str = "dm.va", title: str = "") -> str:
    """The 1M1T1R neuron around the Verilog-A memristor, in ngspice syntax (OSDI, ngspice >= 39
    built with OSDI): ``.model`` of the memristor with ``params``' values, the transistor as
    ngspice's level-1 MOSFET, ``C_g``, ``R_c``, ``R_l`` (and ``C_l``). Include it in a deck that loads
    the compiled model (``pre_osdi`` in a ``.control`` block, named in the header comment)."""
    vals = memristor_parameters(params)
    _check_ranges(vals)
    osdi = (va_file[:-3] if va_file.endswith(".va") else va_file) + ".osdi"
    c, tr = params.circuit, params.transistor
    circ = {k: _scalar(getattr(c, k), f"circuit.{k}") for k in ("c_g", "r_c", "r_l", "v_dd", "c_l")}
    k, vt, lam_clm = level1(tr)     # the same stand-in MOSFET as the ngspice deck
    model_params = " ".join(f"{name}={number(v)}" for name, v in vals.items())
    lines = [
        f"* ionspike {__version__}: 1M1T1R neuron with the Verilog-A diffusive memristor ({MODULE})",
        comment(title) if title else "* exported by ionspike.spice.verilog_a",
        comment(f"compile the model: openvaf {va_file} (gives {osdi}); load it before the netlist is parsed:"),
        comment(f".control / pre_osdi {osdi} / .endc (ngspice >= 39 built with OSDI)"),
        "* transistor: ngspice level-1 MOSFET, kp = 2K (exact for the square law, EKV strong-inversion limit)",
        f".model dm {MODULE} {model_params}",
        f".model nch nmos level=1 vto={number(vt)} kp={number(2 * k)} lambda={number(lam_clm)}",
        "* in = input, vdd = drain supply, g = gate (membrane), d = drain (output)",
        f".subckt {SUBCKT_VA} in vdd g d",
        "Ndm in g dm",
        f"Cg g 0 {number(circ['c_g'])}",
        f"Rc g 0 {number(circ['r_c'])}",
        "M1 d g 0 0 nch",
        f"Rl vdd d {number(circ['r_l'])}",
    ]
    if circ["c_l"] > 0:
        lines.append(f"Cl d 0 {number(circ['c_l'])}")
    lines.append(f".ends {SUBCKT_VA}")
    return "\n".join(lines) + "\n"


def written_by_ionspike(path) -> bool:
    """Whether the file at ``path`` starts like a model or subcircuit this module wrote."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return False
    return head.startswith(b"// ionspike ") or head.startswith(b"* ionspike ")


def export(params: NeuronParams, *, title: str = "", va_file: str = "dm.va") -> VerilogA:
    """The Verilog-A model and its subcircuit for ``params``, with notes on what is not exported."""
    notes = []
    n_eff = float(np.asarray(params.noise.n_eff, float).flat[0]) if np.asarray(params.noise.n_eff).size == 1 else None
    if n_eff is not None and math.isfinite(n_eff):
        notes.append(f"N_eff = {n_eff:g}: the chemical-Langevin noise is exported as white_noise() sources, which only "
                     "transient-noise analyses use (ngspice's OSDI ignores them; its transient is deterministic)")
    sigma_c2c = float(np.max(params.noise.sigma_c2c_ln_mu))
    if sigma_c2c > 0:
        notes.append(f"sigma_c2c_ln_mu = {sigma_c2c:g}: the cycle-to-cycle redraw of mu has no compact-model form "
                     "and is not exported")
    sigma_d2d = float(np.max(params.noise.sigma_d2d_ln_mu))
    if sigma_d2d > 0:
        notes.append(f"sigma_d2d_ln_mu = {sigma_d2d:g}: the device-to-device spread is not in the model; give each "
                     "instance its own mu")
    return VerilogA(source(params, title=title), subcircuit(params, title=title, va_file=va_file), tuple(notes))
