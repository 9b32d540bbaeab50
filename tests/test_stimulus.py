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
