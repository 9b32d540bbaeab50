"""Ablation variants of the 1M1T1R neuron: each turns one characteristic off or moves it
(docs/model.md §8), as a change of parameters or of the cell.

=================  ==========================================================================
``full``           the preset as it is (stochastic)
``no_leak``        gamma1 = gamma2 = 0 (neither filament nor residue decays); mu re-fitted
``no_ip``          beta = 0 (no residue, so no intrinsic plasticity); mu re-fitted
``short_ip``       gamma2 x 10 (the residue, and with it the intrinsic plasticity, lasts ~20 ms
                   instead of ~200 ms); mu re-fitted
``no_refractory``  R_c = 10 MOhm (the gate discharges within one bin: ISI = input period)
``long_refractory`` R_c = 1 GOhm
``deterministic``  N_eff = inf, no device-to-device spread
``high_noise``     N_eff / 3 and a device-to-device spread of ln mu of 0.3
``low_threshold``  drift onset v_h - 0.1 V
``high_threshold`` drift onset v_h + 0.1 V
=================  ==========================================================================

"mu re-fitted": the variant's mu is scaled so that the single neuron under the reference drive
(0.8 V pulses, 1 ms / 2 ms, 300 ms of bins, deterministic) fires as often as the full neuron,
ties broken by the first-spike bin (the baseline firing rate is unchanged, docs/model.md §8.1).
The fit scans a grid of mu factors in one batched run of the network layer itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ionspike.errors import ParameterError
from ionspike.network.neuron import Bin, run
from ionspike.params import NeuronParams, replace

VARIANTS = ("full", "no_leak", "no_ip", "short_ip", "no_refractory", "long_refractory", "deterministic", "high_noise",
            "low_threshold", "high_threshold")
REFIT = ("no_leak", "no_ip", "short_ip")
SHORT_IP_FACTOR = 10.0      # short_ip: the residue decays this many times faster (gamma2 x 10)
REFERENCE_AMPLITUDE = 0.8   # V
REFERENCE_BINS = 150        # 300 ms of 2 ms bins
MU_FACTORS = np.geomspace(1e-3, 20.0, 345)


@dataclass(frozen=True)
class Variant:
    name: str
    params: NeuronParams
    stochastic: bool
    mu_factor: float = 1.0      # re-fit factor applied to mu (1 when not re-fitted)
    note: str = ""


def check(name: str) -> str:
    if name not in VARIANTS:
        raise ParameterError(f"unknown variant {name!r}; allowed: {', '.join(VARIANTS)}")
    return name


def _all(value, target) -> bool:
    return bool(np.all(np.asarray(value, float) == target))


def unchanged(name: str, base: NeuronParams) -> str | None:
    """Why the variant ``name`` would be ``base`` itself (the characteristic it removes or moves is
    already so in this neuron), or None when it changes the neuron. An ablation trains such a variant
    for nothing: its runs would repeat the full neuron's (up to a re-fit of mu that keeps its rate)."""
    check(name)
    m, c, n = base.memristor, base.circuit, base.noise
    if name == "no_leak" and _all(m.gamma1, 0.0) and (_all(m.gamma2, 0.0) or _all(m.beta, 0.0)):
        return "gamma1 = 0 and gamma2 = 0 or no residue already (the neuron does not leak)"
    if name in ("no_ip", "short_ip") and _all(m.beta, 0.0):
        return "beta = 0 already (no residue forms, so there is no intrinsic plasticity to remove or shorten)"
    if name == "short_ip" and _all(m.gamma2, 0.0):
        return "gamma2 = 0 (the residue does not decay: ten times 0 is 0)"
    if name == "high_noise" and _all(n.n_eff, np.inf) and _all(n.sigma_d2d_ln_mu, 0.3):
        return "N_eff = inf (a third of it is inf) and sigma_d2d_ln_mu = 0.3 already"
    if name == "no_refractory" and _all(c.r_c, 10e6):
        return "R_c = 10 MOhm already"
    if name == "long_refractory" and _all(c.r_c, 1e9):
        return "R_c = 1 GOhm already"
    if name == "deterministic" and _all(n.n_eff, np.inf) and _all(n.sigma_d2d_ln_mu, 0.0) \
            and _all(n.sigma_c2c_ln_mu, 0.0):
        return "N_eff = inf and no spread already (the neuron is deterministic)"
    return None


def reference_response(p: NeuronParams, spec: Bin = Bin(), mu_factors=np.ones(1)) -> tuple[np.ndarray, np.ndarray]:
    """Spike count and first-spike bin (``inf`` if none) of single deterministic neurons under the
    reference drive, one per factor of mu. Each neuron's mu is the product ``mu * factor`` in double
    precision, then float32, exactly as :func:`make` stores the chosen factor: the response found for
    a factor is the variant's own (a spike count can be a chaotic function of mu, where even the
    rounding of ``mu * factor`` in float32 moves it)."""
    amps = jnp.full((REFERENCE_BINS, len(mu_factors)), REFERENCE_AMPLITUDE, jnp.float32)
    mu = np.asarray(p.memristor.mu, np.float64) * np.asarray(mu_factors, np.float64)
    p32 = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), replace(p, **{"memristor.mu": mu}).deterministic())
    spikes, _ = run(amps, p32, spec)
    s = np.asarray(spikes)
    count = s.sum(axis=0)
    first = np.where(count > 0, np.argmax(s > 0, axis=0), np.inf)
    return count, first


def refit_mu(p: NeuronParams, target_count: float, target_first: float, spec: Bin = Bin()) -> tuple[float, str]:
    """The factor of mu whose reference response is closest to the target (count, then first bin):
    the best of a coarse geometric grid, refined on a fine grid between its neighbours (a spike
    count is a step function of mu, so the coarse grid alone may step over the target)."""

    def best_of(factors):
        count, first = reference_response(p, spec, factors)
        score = np.lexsort((np.abs(first - target_first), np.abs(count - target_count)))
        best = int(score[0])
        # among the factors tied with the best, take the geometric middle (robust to the grid)
        ties = np.flatnonzero((count == count[best]) & (first == first[best]))
        i = int(ties[len(ties) // 2])
        return i, count, first

    drive = f"{REFERENCE_BINS} bins of {REFERENCE_AMPLITUDE:g} V pulses"
    if not target_count > 0:
        raise ParameterError(f"the reference neuron fires no spike under the reference drive ({drive}): "
                             "there is no rate for a re-fitted variant to keep")
    i, _, _ = best_of(MU_FACTORS)
    fine = np.geomspace(MU_FACTORS[max(i - 1, 0)], MU_FACTORS[min(i + 1, len(MU_FACTORS) - 1)], 129)
    j, count, first = best_of(fine)
    if count[j] == 0:
        raise ParameterError(f"mu cannot be re-fitted: the changed neuron fires no spike under the reference "
                             f"drive ({drive}) for any factor of mu in [{MU_FACTORS[0]:g}, {MU_FACTORS[-1]:g}] "
                             f"(the reference neuron fires {target_count:.0f})")
    note = (f"mu x {fine[j]:.4g}: {int(count[j])} spikes, first in bin {first[j]:.0f} "
            f"(full neuron: {target_count:.0f}, bin {target_first:.0f})")
    return float(fine[j]), note


def make(name: str, base: NeuronParams, spec: Bin = Bin()) -> Variant:
    """The variant ``name`` of the neuron ``base``."""
    check(name)
    m, n = base.memristor, base.noise
    if name == "full":
        return Variant(name, base, True)
    if name == "deterministic":
        return Variant(name, base, False, note="N_eff = inf, sigma_d2d = 0")
    if name == "high_noise":
        p = replace(base, **{"noise.n_eff": float(n.n_eff) / 3.0, "noise.sigma_d2d_ln_mu": 0.3})
        return Variant(name, p, True, note=f"N_eff = {float(n.n_eff) / 3:.3g}, sigma_d2d_ln_mu = 0.3")
    if name == "no_refractory":
        return Variant(name, replace(base, **{"circuit.r_c": 10e6}), True, note="R_c = 10 MOhm")
    if name == "long_refractory":
        return Variant(name, replace(base, **{"circuit.r_c": 1e9}), True, note="R_c = 1 GOhm")
    if name in ("low_threshold", "high_threshold"):
        v_h = float(m.v_h) + (-0.1 if name == "low_threshold" else 0.1)
        return Variant(name, replace(base, **{"memristor.v_h": v_h}), True, note=f"v_h = {v_h:.2f} V")
    if name == "no_leak":
        knobs, what = {"memristor.gamma1": 0.0, "memristor.gamma2": 0.0}, "gamma1 = gamma2 = 0"
    elif name == "no_ip":
        knobs, what = {"memristor.beta": 0.0}, "beta = 0"
    else:   # short_ip
        gamma2 = float(m.gamma2) * SHORT_IP_FACTOR   # scalar, as mu and v_h are for every variant
        lasts = f"residue ~{1e3 / gamma2:.3g} ms" if gamma2 > 0 else "the residue does not decay"
        knobs, what = {"memristor.gamma2": gamma2}, f"gamma2 = {gamma2:.4g} 1/s ({lasts})"
    changed = replace(base, **knobs)
    count, first = reference_response(base, spec)
    try:
        factor, note = refit_mu(changed, float(count[0]), float(first[0]), spec)
    except ParameterError as exc:
        raise ParameterError(f"variant {name!r} ({what}, mu re-fitted to keep the rate): {exc}") from None
    p = replace(changed, **{"memristor.mu": float(m.mu) * factor})
    return Variant(name, p, True, mu_factor=factor, note=f"{what}; {note}")
