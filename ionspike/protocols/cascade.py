"""Cascaded connection (docs/model.md §2.8, §3.12): a neuron's output drives the next neuron."""

from __future__ import annotations

import numpy as np

from ionspike.params import replace
from ionspike.protocols.common import first_after, resolve
from ionspike.simulate import DEFAULT_DT_S, simulate
from ionspike.stimulus import PulseTrain

CASCADE_VDD = 1.2  # V: the load drop I_D R_l must reach the next stage's switching range (docs/model.md §2.8)


def cascade(preset="paper", *, stages=3, amplitude=0.8, width=1e-3, period=2e-3, duration=0.6, v_dd=CASCADE_VDD,
            seed=0, progress=None):
    """A chain of ``stages`` neurons: stage 0 gets the pulse train, stage k the voltage on stage
    k-1's load (``V_DD - V_D``). Deterministic.

    Metrics: ``downstream_spike_count`` (spikes per stage), ``stage_latency_s`` (first spike of
    stage k minus that of stage k-1, for k >= 1), ``first_spike_s`` per stage.
    """
    p, name, dt = resolve(preset)
    p = replace(p, VDD=v_dd)
    dt = dt or DEFAULT_DT_S
    ds = simulate(p, PulseTrain(amplitude=amplitude, width=width, period=period), duration=duration, dt=dt,
                  deterministic=True, seed=seed, stages=stages, signals=("V_in", "F", "V_g", "V_d", "I_d"),
                  record_every=max(1, int(round(20e-6 / dt))), progress=progress)
    counts = [int(c) for c in ds.spike_count.values]
    first = first_after(ds, 0.0)
    # ds.V_in is the input each stage saw (stage k: the load drop of stage k-1, circuit.cascade_input)
    ds.attrs.update(protocol="cascade", v_dd_V=v_dd)
    latency = [float(first[k] - first[k - 1]) if np.isfinite(first[k]) and np.isfinite(first[k - 1]) else None
               for k in range(1, stages)]
    metrics = {
        "downstream_spike_count": counts,
        "first_spike_s": [float(t) if np.isfinite(t) else None for t in first],
        "stage_latency_s": latency,
        "stages": stages, "v_dd_V": v_dd, "preset": name,
    }
    return ds, metrics
