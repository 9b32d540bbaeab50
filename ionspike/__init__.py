"""ionspike: the 1M1T1R diffusive-memristor spiking neuron, from device physics up.

Public API::

    import ionspike as isp
    ds = isp.simulate("paper", isp.PulseTrain(0.8, 1e-3, 2e-3), duration="300 ms", n=100, seed=1)
    isp.metrics.summarize(ds)["first_spike_s"]

Numerics run in JAX with float64 enabled on import (resistances span 1e6..1e18 Ohm).
"""

import jax

jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"

from ionspike import circuit, device, io, metrics, presets, protocols, spice, stimulus  # noqa: E402
from ionspike.errors import (  # noqa: E402
    IonspikeError, ParameterError, PresetError, SolverError, StimulusError, UnitError,
)
from ionspike.params import EKV, Circuit, Memristor, NeuronParams, Noise, SquareLaw, replace  # noqa: E402
from ionspike.simulate import simulate  # noqa: E402
from ionspike.stimulus import DC, PulseTrain, Sampled, Triangle, paired_pulses, ramp  # noqa: E402

__all__ = [
    "simulate", "presets", "stimulus", "circuit", "device", "metrics",
    "NeuronParams", "Memristor", "Noise", "EKV", "SquareLaw", "Circuit", "replace",
    "PulseTrain", "DC", "Triangle", "Sampled", "paired_pulses", "ramp",
    "IonspikeError", "ParameterError", "PresetError", "SolverError", "StimulusError", "UnitError",
]
