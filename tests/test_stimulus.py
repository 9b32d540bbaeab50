import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ionspike import precision
from ionspike.errors import StimulusError
from ionspike.stimulus import DC, PulseTrain, Sampled, Triangle, paired_pulses, parse_pulse, ramp


@pytest.fixture(autouse=True)
def _float64():
    """The waveforms are evaluated in float64, as simulate does (ionspike.precision)."""
    with precision.float64():
        yield


def at(stim, t):
    """First neuron's value at t (shared fields evaluate to a 0-d array)."""
    return float(np.ravel(stim.value(jnp.asarray(t)))[0])


def test_pulse_train_levels_and_per_neuron_fields():
    p = PulseTrain(amplitude=[0.7, 0.9], width=1e-3, period=2e-3).batched(2)
    assert np.allclose(p.value(jnp.asarray(0.5e-3)), [0.7, 0.9])
    assert np.allclose(p.value(jnp.asarray(1.5e-3)), [0.0, 0.0])
    assert np.allclose(p.value(jnp.asarray(2.5e-3)), [0.7, 0.9])


def test_pulse_train_duration_stops_the_train():
    p = PulseTrain(0.8, 1e-3, 2e-3, duration=5e-3).batched(1)
    assert [at(p, t) for t in (0.5e-3, 4.5e-3, 6.5e-3)] == [0.8, 0.8, 0.0]


def test_paired_pulses_are_two_pulses_with_the_gap():
    p = paired_pulses(2.0, 20e-3, gap=30e-3).batched(1)
    assert at(p, 10e-3) == 2.0
    assert at(p, 35e-3) == 0.0   # in the gap
    assert at(p, 60e-3) == 2.0   # second pulse
    assert at(p, 110e-3) == 0.0  # no third pulse


def test_dc_ramp_triangle_sampled():
    assert at(DC(0.8, delay=1e-3).batched(1), 2e-3) == 0.8
    assert at(DC(0.8, delay=1e-3).batched(1), 0.5e-3) == 0.0
    r = ramp(0.0, 1.0, 1.0).batched(1)
    assert at(r, 0.25) == pytest.approx(0.25)
    assert at(r, 5.0) == pytest.approx(1.0)
    tri = Triangle(peak=0.6, rise=1.0, fall=1.0).batched(1)
    assert [at(tri, t) for t in (0.5, 1.5, 2.5)] == pytest.approx([0.3, 0.3, 0.0])
    s = Sampled([0.0, 1.0, 2.0], [[0.0, 1.0, 0.0], [1.0, 1.0, 1.0]]).batched(2)
    assert np.allclose(s.value(jnp.asarray(0.5)), [0.5, 1.0])


def test_parse_pulse_cli_form():
    p = parse_pulse("0.8V,1ms,2ms")
    assert (float(p.amplitude), float(p.width), float(p.period)) == (0.8, 1e-3, 2e-3)
    with pytest.raises(StimulusError, match="AMPLITUDE,WIDTH,PERIOD"):
        parse_pulse("0.8V,1ms")


@pytest.mark.parametrize("make, fragment", [
    (lambda: Sampled([0, 1, 2], [0.0, float("nan"), 0.0]), "NaN at index (1,)"),
    (lambda: PulseTrain(0.8, 3e-3, 2e-3), "width = 0.003 s exceeds period"),
    (lambda: PulseTrain(0.8, -1e-3, 2e-3), "PulseTrain.width = -0.001"),
    (lambda: PulseTrain(float("nan"), 1e-3, 2e-3), "amplitude contains NaN"),
    (lambda: Sampled([0, 2, 1], [0, 0, 0]), "strictly increasing"),
    (lambda: Sampled([0, 1, 2], [0, 0]), "expected shape"),
])
def test_bad_waveforms_are_rejected(make, fragment):
    with pytest.raises(StimulusError) as info:
        make()
    assert fragment in str(info.value)


def test_min_segment_is_the_shortest_piece():
    assert PulseTrain(0.8, 1e-3, 4e-3).min_segment() == pytest.approx(1e-3)
    assert PulseTrain(0.8, 3e-3, 4e-3).min_segment() == pytest.approx(1e-3)
    assert DC(0.5).min_segment() == np.inf


@pytest.mark.parametrize("make, fragment", [
    # JAX arrays are validated like NumPy ones (they used to skip every check)
    (lambda: PulseTrain(jnp.array([0.8, jnp.nan]), 1e-3, 2e-3), "PulseTrain.amplitude contains NaN"),
    (lambda: PulseTrain(0.8, jnp.array(3e-3), 2e-3), "width = 0.003 s exceeds period"),
    (lambda: Sampled(jnp.array([0.0, 1.0]), jnp.array([0.0, jnp.inf])), "Sampled.values contains inf"),
    (lambda: DC(jnp.zeros((2, 2))), "DC.amplitude: expected a scalar or a non-empty 1-D array"),
    # types, shapes, lengths, finiteness
    (lambda: PulseTrain(True, 1e-3, 2e-3), "PulseTrain.amplitude = True: expected a number in V, not a bool"),
    (lambda: PulseTrain([], 1e-3, 2e-3), "got shape (0,)"),
    (lambda: PulseTrain(None, 1e-3, 2e-3), "PulseTrain.amplitude = None: expected numbers"),
    (lambda: PulseTrain([0.8, 0.9], [1e-3] * 3, 2e-3), "per-neuron fields have different lengths"),
    (lambda: PulseTrain(0.8, 1e-3, float("inf")), "PulseTrain.period = inf s is out of range"),
    (lambda: PulseTrain(0.8, 1e-3, 2e-3, n_pulses=1.5), "n_pulses = 1.5 is not a whole number"),
    (lambda: DC(float("inf")), "DC.amplitude = inf V is out of range: allowed finite values"),
    (lambda: Triangle(1e308, 1.0, 1.0, baseline=-1e308), "peak - baseline"),
    (lambda: Triangle(0.6, 1.0, 1.0, hold_peak=0.5), "hold_peak = 0.5"),
    (lambda: Sampled(None, None), "Sampled.times = None"),
    (lambda: Sampled([0.0, 1.0], 5.0), "Sampled.values: expected shape (2,) or (n, 2)"),
    (lambda: Sampled([0.0, float("inf")], [0.0, 1.0]), "finite and strictly increasing"),
    (lambda: paired_pulses(1.0, [1e-3, 2e-3], [1e-3] * 3), "paired_pulses: per-neuron fields have different"),
    (lambda: parse_pulse(None), "--pulse None: expected AMPLITUDE,WIDTH,PERIOD"),
    (lambda: parse_pulse("1 V, 2 ms, 1 ms"), "width = 0.002 s exceeds period"),
])
def test_waveform_fields_of_any_kind_are_validated(make, fragment):
    with pytest.raises(StimulusError) as info:
        make()
    assert fragment in str(info.value)


def test_jax_transformations_still_rebuild_waveforms():
    stim = PulseTrain(jnp.array([0.8, 0.9]), jnp.array([1e-3, 1e-3]), jnp.array([2e-3, 2e-3]), jnp.zeros(2),
                      jnp.full(2, jnp.inf), jnp.zeros(2), jnp.full(2, jnp.inf))
    assert isinstance(stim.amplitude, jax.Array)        # validated, and kept as the JAX array it was
    np.testing.assert_allclose(jax.vmap(lambda s: s.value(0.0))(stim), [0.8, 0.9])
    np.testing.assert_allclose(jax.jit(lambda s: s.value(0.0))(stim.batched(2)), [0.8, 0.9])
