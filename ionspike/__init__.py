"""ionspike: the 1M1T1R diffusive-memristor spiking neuron, from device physics up.

Public API::

    import ionspike as isp
    ds = isp.simulate("paper", isp.PulseTrain(0.8, 1e-3, 2e-3), duration="300 ms", n=100, seed=1)
    isp.metrics.summarize(ds)["first_spike_s"]

Importing ionspike changes no JAX setting: entry points that need float64 (the circuit
simulator, protocols, calibration, SPICE cross-checks) enable it for their own call
(:mod:`ionspike.precision`); network training runs in float32.
"""

__version__ = "0.1.0"

from ionspike import circuit, device, io, metrics, presets, protocols, spice, stimulus
from ionspike.errors import (
    IonspikeError, ParameterError, PresetError, SolverError, StimulusError, UnitError,
)
from ionspike.params import EKV, Circuit, Memristor, NeuronParams, Noise, SquareLaw, replace
from ionspike.simulate import simulate
from ionspike.stimulus import DC, PulseTrain, Sampled, Triangle, paired_pulses, ramp

__all__ = [
    "simulate", "presets", "stimulus", "circuit", "device", "metrics", "io", "protocols", "spice",
    "NeuronParams", "Memristor", "Noise", "EKV", "SquareLaw", "Circuit", "replace",
    "PulseTrain", "DC", "Triangle", "Sampled", "paired_pulses", "ramp",
    "IonspikeError", "ParameterError", "PresetError", "SolverError", "StimulusError", "UnitError",
]
