"""Characterisation protocols: one function per experiment, each returning ``(Dataset, metrics)``.

The six characteristics of the 1M1T1R neuron (docs/model.md §2) plus energy:

========================  =====================================================
``leaky_integration``     pulses to fire vs gap; filament decay time
``threshold``             pulse and DC thresholds; all-or-none spike height
``cascade``               a chain of neurons, each driven by the previous load
``intrinsic_plasticity``  paired-pulse advance vs gap; recovery time
``refractory``            ISI vs R_c; recovery of firing after a spike
``stochasticity``         firing probability, switching-delay statistics, ISI CV
``energy``                energy per spike and breakdown, every preset
========================  =====================================================

Protocols only simulate and measure; figures are drawn by :mod:`ionspike.report` from the
saved Datasets.
"""

from __future__ import annotations

from ionspike.errors import ParameterError
from ionspike.protocols.cascade import cascade
from ionspike.protocols.energy import energy
from ionspike.protocols.leaky import leaky_integration
from ionspike.protocols.plasticity import intrinsic_plasticity
from ionspike.protocols.refractory import refractory
from ionspike.protocols.stochasticity import stochasticity
from ionspike.protocols.threshold import threshold

PROTOCOLS = {
    "leaky_integration": leaky_integration,
    "threshold": threshold,
    "cascade": cascade,
    "intrinsic_plasticity": intrinsic_plasticity,
    "refractory": refractory,
    "stochasticity": stochasticity,
    "energy": energy,
}
ALIASES = {"leaky": "leaky_integration", "plasticity": "intrinsic_plasticity", "stochastic": "stochasticity",
           "refractory_period": "refractory"}
TRIALS = {"stochasticity", "refractory"}  # protocols that take a number of stochastic trials


def names() -> list[str]:
    return list(PROTOCOLS)


def resolve_names(items: list[str] | None) -> list[str]:
    """Canonical protocol names from user input; unknown names raise with the valid list."""
    if not items:
        return names()
    out = []
    for item in items:
        if not isinstance(item, str):
            raise ParameterError(f"characteristic {item!r} ({type(item).__name__}): expected a name, one of "
                                 f"{', '.join(names())}")
        name = ALIASES.get(item.strip(), item.strip())
        if name not in PROTOCOLS:
            raise ParameterError(f"unknown characteristic {item!r}; allowed: {', '.join(names())} "
                                 f"(aliases: {', '.join(sorted(ALIASES))})")
        if name not in out:
            out.append(name)
    return out


def run(name: str, preset="paper", *, trials: int | None = None, seed: int = 0, progress=None):
    """Run one protocol by name or alias: ``(Dataset, metrics)``.

    ``trials`` (the number of stochastic trials) goes to the protocols that take it
    (:data:`TRIALS`); the others are deterministic and have none. ``energy`` measures every
    built-in preset, whatever ``preset`` says.
    """
    canonical = resolve_names([name])[0]
    fn = PROTOCOLS[canonical]
    kw = dict(seed=seed, progress=progress)
    if canonical == "energy":
        return fn(**kw)
    if trials is not None and canonical in TRIALS:
        kw["trials"] = trials
    return fn(preset, **kw)


__all__ = ["PROTOCOLS", "names", "resolve_names", "run", *PROTOCOLS]
