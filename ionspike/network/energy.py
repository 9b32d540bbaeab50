"""Network energy per inference, under stated assumptions.

``E = N_spikes * E_spike(preset) + N_reads * E_read``, per classified sequence:

* ``N_spikes``: hidden-neuron spikes per sample (measured on the test set).
* ``E_spike``: the circuit model's energy per output spike for the preset, from
  :func:`ionspike.protocols.energy.energy` on the preset's default stimulus, in two parts kept
  apart because they differ by orders of magnitude: the neuron's own (drawn by the input,
  the paper's pJ -> aJ figure) and its output stage (V_DD through the transistor and R_l). The network's spike count comes from the ``paper``-preset network; for ``65nm``
  and ``3nm`` the same spike count is priced at that preset's energy per spike (the scaling
  path: same network, scaled device).
* ``N_reads``: synapse reads in the crossbars. Every hidden spike reads its row of the
  recurrent crossbar (``hidden`` synapses) and of the readout (``n_out``); every bin applies the
  input vector to the input crossbar (``n_in * hidden`` reads per bin, analog inputs are read
  every bin whatever their value).
* ``E_read``: energy of one synapse read (a parameter; default 1 fJ, the order of an RRAM
  crossbar cell read at ~0.1-0.2 V and ~µA for ~10 ns).
"""

from __future__ import annotations

from ionspike.errors import ParameterError
from ionspike.units import parse_quantity

PRESETS = ("paper", "65nm", "3nm")
DEFAULT_READ_ENERGY_J = 1e-15


def spike_energies(presets=PRESETS) -> dict:
    """Energy per output spike (J) of each preset's circuit model: ``{preset: {"neuron": J, "output_stage": J}}``."""
    from ionspike.protocols.energy import energy

    _, out = energy(presets=list(presets), amplitudes=(0.8,))
    return {name: {"neuron": out["energy_per_spike_J"][name], "output_stage": out["output_stage_energy_per_spike_J"][name]}
            for name in presets}


def read_energy(value) -> float:
    e = parse_quantity(value, "J") if isinstance(value, str) else float(value)
    if not (0.0 <= e < 1e-6):
        raise ParameterError(f"read_energy = {value!r} is out of range: allowed [0, 1 uJ) per synapse read")
    return e


def synops(spikes_per_sample: float, *, n_in: int, hidden: int, n_out: int, bins: int) -> dict:
    """Synaptic operations per inference in NeuroBench's convention (``SynapticOperations``):
    ``effective_macs``, multiply-accumulates of non-binary inputs (the analog input crossbar, applied
    every bin: ``bins * n_in * hidden``, every input value counted as non-zero, as the crossbar
    reads above); ``effective_acs``, accumulates triggered by spikes (each hidden spike reaches
    ``hidden`` recurrent and ``n_out`` readout synapses); ``dense``, every synapse every bin. Spike
    counts per layer: the hidden layer's (the input and the readout do not spike)."""
    acs = spikes_per_sample * (hidden + n_out)
    macs = bins * n_in * hidden
    return {"effective_macs": float(macs), "effective_acs": float(acs), "total": float(macs + acs),
            "dense": float(bins * (n_in * hidden + hidden * hidden + hidden * n_out)),
            "spikes_per_layer": {"input": None, "hidden": float(spikes_per_sample), "readout": None},
            "convention": "NeuroBench SynapticOperations (Effective_MACs, Effective_ACs, Dense), per inference"}


def per_inference(spikes_per_sample: float, *, n_in: int, hidden: int, n_out: int, bins: int,
                  spike_energy_J: dict, read_energy_J: float = DEFAULT_READ_ENERGY_J) -> dict:
    """Energy per inference (J) for each preset, with its neuron and crossbar parts."""
    reads = spikes_per_sample * (hidden + n_out) + bins * n_in * hidden
    out = {}
    for name, e in spike_energy_J.items():
        parts = {"neurons_J": spikes_per_sample * e["neuron"], "output_stages_J": spikes_per_sample * e["output_stage"],
                 "crossbar_J": reads * read_energy_J}
        out[name] = {"total_J": sum(parts.values()), **parts}
    return {"per_preset": out, "synapse_reads": reads, "read_energy_J": read_energy_J,
            "spike_energy_J": dict(spike_energy_J),
            "synops": synops(spikes_per_sample, n_in=n_in, hidden=hidden, n_out=n_out, bins=bins)}
