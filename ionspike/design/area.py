"""Footprint of a 1M1T1R neuron as a technology would build it (docs/model.md §11), next to its energy.

The model counts four elements, each under a stated assumption of :data:`TECHNOLOGIES` (typical values
of a node, not a foundry's design rules; they set the order of magnitude, not a layout):

* **transistor**: ``W/L = beta / k'`` (``beta`` = ``mu C_ox W/L`` of the EKV model, ``k'`` the node's
  ``mu C_ox``), ``L`` the node's minimum length (``W`` at least the minimum width); footprint
  ``(W + 2F) (L + 6F)`` with room for the source and drain contacts;
* **memristor**: stacked on the transistor (the paper's vertical integration): a ``4F^2`` crosspoint
  cell that adds no footprint of its own;
* **C_g**: the transistor's own gate capacitance ``C_ox W L`` counts; the rest is a MIM capacitor of
  the node's density;
* **R_c**: a high-resistance polysilicon line of the node's sheet resistance and minimum width
  (``R/R_sheet`` squares). Gigaohm resistors are impractical as lines: a pseudo-resistor (a transistor
  in subthreshold, one more minimum device) is how circuits build them, but it is not the linear
  resistor the model simulates; the report gives both and flags it.

The neuron's footprint is the transistor (with the memristor on top) plus the passives that do not fit
under it.
"""

from __future__ import annotations

import math

from ionspike.errors import ParameterError
from ionspike.params import NeuronParams

# per node: feature size F (m), k' = mu_n C_ox (A/V^2), C_ox (F/m^2), MIM density (F/m^2), high-R poly
# sheet resistance (ohm/sq) and minimum resistor width (m). Typical values, stated as assumptions.
TECHNOLOGIES = {
    "65nm": {"feature_m": 65e-9, "k_prime_A_per_V2": 300e-6, "c_ox_F_per_m2": 1.5e-2, "mim_F_per_m2": 2e-3,
             "poly_ohm_per_sq": 1e3, "resistor_width_m": 0.4e-6,
             "source": "typical 65 nm bulk CMOS: EOT ~2 nm, MIM 2 fF/um^2, high-R poly 1 kOhm/sq (assumed)"},
    "3nm": {"feature_m": 12e-9, "k_prime_A_per_V2": 600e-6, "c_ox_F_per_m2": 3.0e-2, "mim_F_per_m2": 2e-2,
            "poly_ohm_per_sq": 1e3, "resistor_width_m": 0.05e-6,
            "source": "a 3 nm-class node: EOT ~1 nm, 3D MIM 20 fF/um^2, high-R line 1 kOhm/sq at 50 nm width "
                      "(assumed, order of magnitude only)"},
}
PRESET_NODES = {"paper": "65nm", "si-exact": "65nm", "stochastic": "65nm", "65nm": "65nm", "3nm": "3nm"}


def footprint(params: NeuronParams, node: str = "65nm") -> dict:
    """Areas (m^2) of the neuron's elements and the total, with the assumptions used."""
    if node not in TECHNOLOGIES:
        raise ParameterError(f"node = {node!r} is unknown: allowed {', '.join(TECHNOLOGIES)}")
    t = TECHNOLOGIES[node]
    f = t["feature_m"]
    beta = float(getattr(params.transistor, "beta", math.nan))
    if not math.isfinite(beta):
        raise ParameterError("the area model needs an EKV transistor (beta = mu C_ox W/L)")
    ratio = beta / t["k_prime_A_per_V2"]
    length = f
    width = max(ratio * length, f)
    transistor = (width + 2 * f) * (length + 6 * f)
    gate = t["c_ox_F_per_m2"] * width * length
    c_g = float(params.circuit.c_g)
    extra_c = max(c_g - gate, 0.0)
    capacitor = extra_c / t["mim_F_per_m2"]
    r_c = float(params.circuit.r_c)
    squares = r_c / t["poly_ohm_per_sq"]
    resistor = squares * t["resistor_width_m"] ** 2
    memristor = 4 * f * f
    total = transistor + capacitor + resistor
    return {
        "node": node, "assumptions": t["source"], "w_over_l": ratio, "width_m": width, "length_m": length,
        "transistor_m2": transistor, "memristor_m2": memristor, "gate_capacitance_F": gate,
        "capacitor_F": extra_c, "capacitor_m2": capacitor, "resistor_squares": squares, "resistor_m2": resistor,
        "pseudo_resistor_m2": transistor, "total_m2": total,
        "total_with_pseudo_resistor_m2": transistor * 2 + capacitor,
        "dominant": max((("transistor", transistor), ("C_g", capacitor), ("R_c", resistor)), key=lambda kv: kv[1])[0],
    }
