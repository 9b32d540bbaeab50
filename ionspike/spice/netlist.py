"""ngspice netlist export of the 1M1T1R neuron (one source of parameter values: NeuronParams).

Mapping (ionspike -> ngspice):

* F and R: node voltages of 1 F capacitors charged by behavioural current sources with the
  laws of docs/model.md §3.2-3.5 (growth with the drift onset and the gap field, dissolution,
  transfer, residue decay). Deterministic only: the chemical-Langevin noise and the
  cycle-to-cycle redraw have no transient-analysis equivalent and are refused.
  Device-to-device spread is exported as per-copy ``mu`` (the same draw as ``simulate``).
* The DM: a behavioural current source from the input to the gate with the resistance law
  (written in the overflow-free form of :func:`ionspike.device.memristor.resistance`).
* Transistor, ``model="mosfet"`` (default): SPICE level 1 with ``kp = 2 K``, ``vto``,
  ``lambda``. It is exact for the ``square`` law. For an EKV transistor it uses the EKV
  strong-inversion limit ``K = beta/(2n)``. Measured against the paper preset's EKV on
  V_g 0..0.8 V, V_D 0.01..0.5 V: within 2 % in saturation at V_g = 0.8 V, up to 23 % in
  triode, and no current below V_T (EKV: up to 0.8 µA at V_g = V_T). The gate dynamics and
  spike times are unaffected (the ideal gate draws no current either way); drain current
  and output-stage energy are. ``model="behavioural"`` writes the EKV equation itself as a
  current source (exact).
* Stimulus: ``PulseTrain`` as PULSE (rise/fall 1 ns) or PWL when it stops; ``DC``;
  ``Triangle``/``Sampled`` as PWL.
"""

from __future__ import annotations

import math

import numpy as np

from ionspike import __version__
from ionspike.params import NeuronParams, SquareLaw, replace
from ionspike.precision import x64
from ionspike.spice import deck
from ionspike.spice.deck import SUBCKT, SpiceError
from ionspike.stimulus import DC, PulseTrain, Sampled, Stimulus, Triangle

EDGE_S = 1e-9          # rise/fall time of exported pulse edges
MAX_COPIES = 10_000    # neurons in one deck (one subcircuit line each; ngspice slows far before this)
MAX_PWL_POINTS = 1_000_000   # points of one PWL source (a finite pulse train over a long transient)

_g = deck.number


def exportable(params: NeuronParams) -> tuple[NeuronParams, str | None]:
    """The neuron as ngspice can express it, and a note on what was dropped (None: nothing).

    The chemical-Langevin noise (finite ``n_eff``) and the cycle-to-cycle redraw of ``mu``
    have no transient-analysis form: they are switched off. The device-to-device spread is
    kept (exported as per-copy ``mu``).
    """
    noise = params.noise
    dropped = []
    if math.isfinite(float(np.min(noise.n_eff))):
        dropped.append(f"n_eff = {float(np.min(noise.n_eff)):g}")
    if float(np.max(noise.sigma_c2c_ln_mu)) > 0:
        dropped.append(f"sigma_c2c_ln_mu = {float(np.max(noise.sigma_c2c_ln_mu)):g}")
    if not dropped:
        return params, None
    note = (f"the noise ({', '.join(dropped)}) has no ngspice form; exporting the deterministic neuron "
            "(device-to-device spread is kept as per-copy mu)")
    return replace(params, N_eff=float("inf"), sigma_c2c=0.0), note


def level1(tr) -> tuple[float, float, float]:
    """``(K, V_T, lambda)`` of the SPICE level-1 MOSFET that stands for the transistor: exact for the
    square law, the EKV strong-inversion limit ``K = beta/(2n)`` otherwise (see the module docstring)."""
    if isinstance(tr, SquareLaw):
        return float(tr.k), float(tr.v_t), float(tr.lambda_clm)
    return float(tr.beta) / (2 * float(tr.n)), float(tr.v_t0), float(tr.lambda_clm)


def check_copies(n, name: str = "n") -> int:
    """``n`` as the number of neuron copies in a deck: an integer 1..MAX_COPIES, else :class:`SpiceError`."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_COPIES:
        raise SpiceError(f"{name} = {n!r} is out of range: allowed integers 1..{MAX_COPIES} (neuron copies in the netlist)")
    return int(n)


def _scalar(value, name: str) -> float:
    a = np.asarray(value, float)
    if a.size != 1 and not np.all(a == a.flat[0]):
        raise SpiceError(f"{name} varies per neuron ({a.size} values): only mu (device spread) can differ "
                         f"between exported copies; export one netlist per value instead")
    return float(a.flat[0])


def _source(stim: Stimulus, i: int, duration: float) -> str:
    def f(name):
        a = np.asarray(getattr(stim, name), float)
        return float(a.flat[i] if a.size > 1 else a.flat[0])

    if isinstance(stim, DC):
        v, d, b = f("amplitude"), f("delay"), f("baseline")
        if d == 0:
            return f"DC {_g(v)}"
        return f"PWL(0 {_g(b)} {_g(d)} {_g(b)} {_g(d + EDGE_S)} {_g(v)})"
    if isinstance(stim, PulseTrain):
        amp, w, T, d, npl, base, dur = (f(k) for k in ("amplitude", "width", "period", "delay", "n_pulses",
                                                       "baseline", "duration"))
        if math.isinf(npl) and math.isinf(dur):
            return f"PULSE({_g(base)} {_g(amp)} {_g(d)} {_g(EDGE_S)} {_g(EDGE_S)} {_g(w - EDGE_S)} {_g(T)})"
        count = int(min(npl, math.ceil(dur / T) if math.isfinite(dur) else npl, math.ceil((duration - d) / T) + 1))
        if 4 * count > MAX_PWL_POINTS:
            raise SpiceError(f"the pulse train has {count} pulses within {duration:g} s: a PWL source of more than "
                             f"{MAX_PWL_POINTS} points; allowed at most {MAX_PWL_POINTS // 4} pulses (shorten the "
                             "transient or give an endless train)")
        pts = [(0.0, base)]
        for k in range(max(count, 0)):
            t0 = d + k * T
            pts += [(t0, base), (t0 + EDGE_S, amp), (t0 + w, amp), (t0 + w + EDGE_S, base)]
        return "PWL(" + " ".join(f"{_g(t)} {_g(v)}" for t, v in pts) + ")"
    if isinstance(stim, Sampled):
        t = np.asarray(stim.times, float)
        v = np.asarray(stim.values, float)
        v = v[i] if v.ndim == 2 else v
        return "PWL(" + " ".join(f"{_g(a)} {_g(b)}" for a, b in zip(t, v)) + ")"
    if isinstance(stim, Triangle):
        import jax.numpy as jnp

        ts = np.linspace(0.0, duration, 4001)
        batch = stim.batched(stim.size())
        vals = [float(np.ravel(batch.value(jnp.asarray(t)))[i if stim.size() > 1 else 0]) for t in ts]
        return "PWL(" + " ".join(f"{_g(a)} {_g(b)}" for a, b in zip(ts, vals)) + ")"
    raise SpiceError(f"stimulus {type(stim).__name__} has no ngspice form")


@x64
def netlist(params: NeuronParams, stimulus: Stimulus, *, duration: float, dt: float, n: int = 1,
            mu_scale=None, model: str = "mosfet", title: str = "", save_all: bool = True) -> str:
    """An ngspice deck of ``n`` copies of the neuron (SI units throughout).

    Args:
        params: deterministic parameters (finite ``n_eff`` or a cycle-to-cycle spread raise
            :class:`SpiceError`: they have no transient-analysis form).
        stimulus: the input; per-neuron fields give one source per copy.
        duration, dt: ``.tran`` stop time and maximum step, s.
        n: number of copies.
        mu_scale: per-copy multiplicative spread of ``mu`` (from ``simulate``'s draw), or None.
        model: ``"mosfet"`` (SPICE level 1) or ``"behavioural"`` (exact EKV as a B source).
        title: free text for the deck's second comment line (made one printable line by
            :func:`ionspike.spice.deck.comment`).

    The deck passes :func:`ionspike.spice.deck.check` before it is returned.
    """
    n = check_copies(n)
    for name, value in (("duration", duration), ("dt", dt)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
                or not (math.isfinite(value) and value > 0):
            raise SpiceError(f"{name} = {value!r} is out of range: allowed a finite time > 0 s")
    if dt > duration:
        raise SpiceError(f"dt = {dt:g} s is out of range: allowed up to the duration ({duration:g} s)")
    m, c, tr, noise = params.memristor, params.circuit, params.transistor, params.noise
    if math.isfinite(float(np.min(noise.n_eff))):
        raise SpiceError(f"noise.n_eff = {float(np.min(noise.n_eff)):g}: the chemical-Langevin noise cannot be "
                         "expressed in an ngspice transient; use the deterministic neuron (n_eff = inf; --deterministic)")
    if float(np.max(noise.sigma_c2c_ln_mu)) > 0:
        raise SpiceError(f"noise.sigma_c2c_ln_mu = {float(np.max(noise.sigma_c2c_ln_mu)):g}: a redraw of mu at every "
                         "DM turn-on cannot be expressed in ngspice; set it to 0 (device-to-device spread is fine)")
    if model not in ("mosfet", "behavioural"):
        raise SpiceError(f"model = {model!r}: allowed 'mosfet' or 'behavioural'")
    vals = {k: _scalar(getattr(m, k), f"memristor.{k}") for k in ("v_h", "alpha", "beta", "gamma1", "gamma2", "lam",
                                                                  "r_on", "r_off", "v_h_reverse_shift",
                                                                  "mu_reverse_factor")}
    mu_base = np.broadcast_to(np.asarray(m.mu, float), (n,))
    scale = np.ones(n) if mu_scale is None else np.broadcast_to(np.asarray(mu_scale, float), (n,))
    mus = mu_base * scale
    circ = {k: _scalar(getattr(c, k), f"circuit.{k}") for k in ("c_g", "r_c", "r_l", "v_dd", "c_l")}
    if m.polarity == "symmetric":  # forward: onset v_h, rate mu; reverse: v_h + vhr, mu * mur
        excess = "max(v(in)-v(g)-vh,0)+mur*max(v(g)-v(in)-vh-vhr,0)"
    else:
        excess = "max(v(in)-v(g)-vh,0)"
    lines = [
        f"{deck.HEADER} {__version__}: 1M1T1R spiking neuron (diffusive memristor, transistor, resistor)",
        deck.comment(title) if title else "* exported by ionspike.spice.netlist",
        "* units: SI (V, A, s, Ohm, F); F and R are node voltages of 1 F capacitors (dimensionless state)",
        "",
        "* ---- parameters (names of docs/model.md §4.1) ----",
        f".param vh={_g(vals['v_h'])} alpha={_g(vals['alpha'])} beta={_g(vals['beta'])}",
        f"+ gamma1={_g(vals['gamma1'])} gamma2={_g(vals['gamma2'])} lam={_g(vals['lam'])}",
        f"+ ron={_g(vals['r_on'])} roff={_g(vals['r_off'])} vhr={_g(vals['v_h_reverse_shift'])}",
        f"+ mur={_g(vals['mu_reverse_factor'])}",
        f"+ cg={_g(circ['c_g'])} rc={_g(circ['r_c'])} rl={_g(circ['r_l'])} vdd={_g(circ['v_dd'])} cl={_g(circ['c_l'])}",
        "* clipped ionic state x = clip(F + R, 0, 1) of the resistance law",
        ".func xb(a,b) {min(max(a+b,0),1)}",
        "",
    ]
    k, vt, lam_clm = level1(tr)
    if model == "mosfet":
        lines += ["* ---- transistor: SPICE level 1, kp = 2K (exact for the square law; EKV strong-inversion limit) ----",
                  f".model nch nmos level=1 vto={_g(vt)} kp={_g(2 * k)} lambda={_g(lam_clm)}", ""]
    lines += [
        "* ---- one neuron: in = input, vdd = drain supply, g = gate (membrane), d = drain ----",
        f".subckt {SUBCKT} in vdd g d mu=550",
        "* ionic state: filament F on node f, residue R on node r (1 F each, so I = dx/dt)",
        "Cf f 0 1",
        "Cr r 0 1",
        f"Bf 0 f I = mu*({excess})/(alpha+abs(1-v(f)-v(r))) - (gamma1+beta)*v(f)",
        "Br 0 r I = beta*v(f) - gamma2*v(r)",
        "* diffusive memristor, input to gate: R_d = max(ron*xb + roff*e^(-xb/lam)*(e^(-(1-xb)/lam)-1)/(e^(-1/lam)-1), ron)",
        "Bdm in g I = (v(in)-v(g))/max(ron*xb(v(f),v(r)) + roff*exp(-xb(v(f),v(r))/lam)"
        "*(exp(-(1-xb(v(f),v(r)))/lam)-1)/(exp(-1/lam)-1), ron)",
        "* gate capacitance (the membrane) and the control resistor R_c",
        "Cg g 0 {cg}",
        "Rc g 0 {rc}",
        "* output stage: n-MOSFET, load R_l to V_DD, load capacitance C_l",
    ]
    if model == "mosfet":
        lines.append("M1 d g 0 0 nch")
    else:
        ut = 8.617333262e-5 * float(tr.temperature)
        ispec = 2 * float(tr.n) * float(tr.beta) * ut * ut
        vp = f"((v(g)-{_g(float(tr.v_t0))})/{_g(float(tr.n))})"
        lines.append(f"Bm d 0 I = {_g(ispec)}*(ln(1+exp({vp}/{_g(2 * ut)}))^2 - ln(1+exp(({vp}-v(d))/{_g(2 * ut)}))^2)"
                     f"*(1+{_g(float(tr.lambda_clm))}*v(d))")
    lines += ["Rl vdd d {rl}"]
    if circ["c_l"] > 0:
        lines.append("Cl d 0 {cl}")
    lines += [f".ends {SUBCKT}", "", "* ---- supply and inputs ----", "Vdd vdd 0 {vdd}"]
    per_copy_input = stimulus.size() > 1
    if not per_copy_input:
        lines.append(f"Vin in 0 {_source(stimulus, 0, duration)}")
    lines += ["", f"* ---- {n} neuron(s); per-copy mu carries the device-to-device draw ----"]
    for i in range(n):
        node_in = f"in{i}" if per_copy_input else "in"
        if per_copy_input:
            lines.append(f"Vin{i} in{i} 0 {_source(stimulus, i, duration)}")
        lines.append(f"X{i} {node_in} vdd g{i} d{i} {SUBCKT} mu={_g(mus[i])}")
    saves = []
    for i in range(n):
        saves += [f"v(g{i})", f"v(d{i})", f"v(x{i}.f)", f"v(x{i}.r)", f"v({'in%d' % i if per_copy_input else 'in'})"]
    lines += ["", "* ---- analysis: maximum step matched to the physics (ionspike dt) ----",
              f".tran {_g(dt)} {_g(duration)} 0 {_g(dt)} uic",
              ".options reltol=1e-4",
              ".save " + " ".join(dict.fromkeys(saves)),
              ".end"]
    return deck.check("\n".join(lines) + "\n")
