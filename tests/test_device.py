"""Device laws against their known limits (docs/model.md §3.2-3.8)."""

import jax.numpy as jnp
import numpy as np
import pytest

from ionspike import presets
from ionspike.device import drain_current, growth_rate, resistance, solve_drain
from ionspike.device.transistor import K_B_OVER_Q
from ionspike.errors import ParameterError
from ionspike.params import EKV, SquareLaw

P = presets.params("paper")


@pytest.fixture(autouse=True)
def _float64():
    """The laws are checked in float64 (what the circuit simulator runs them in)."""
    from ionspike import precision

    with precision.float64():
        yield


def test_resistance_law_endpoints_and_monotonicity():
    m = P.memristor
    x = jnp.linspace(-0.5, 1.5, 401)
    r = np.asarray(resistance(x, m))
    assert r[0] == pytest.approx(m.r_off, rel=1e-12)            # x <= 0 -> R_off (clipped state)
    assert r[-1] == pytest.approx(m.r_on, rel=1e-12)            # x >= 1 -> R_on
    assert np.all(np.diff(r) <= 0)                              # more Ag, lower resistance
    # the exponential law itself, written out independently
    xs = np.array([0.1, 0.5, 0.9, 0.999])
    expected = m.r_on * xs + m.r_off * (np.exp((1 - xs) / m.lam) - 1) / (np.exp(1 / m.lam) - 1)
    assert np.asarray(resistance(jnp.asarray(xs), m)) == pytest.approx(np.maximum(expected, m.r_on), rel=1e-12)


def test_growth_needs_the_drift_onset_and_respects_polarity():
    m = P.memristor
    assert float(growth_rate(0.49, 0.0, m)) == 0.0                        # below v_h: no drift
    assert float(growth_rate(0.8, 0.0, m)) == pytest.approx(550 * 0.3 / 1.01)
    assert float(growth_rate(-0.8, 0.0, m)) == 0.0                        # asymmetric: negative bias does nothing
    sym = type(m)(**{**m.to_dict(), "polarity": "symmetric"})
    assert float(growth_rate(-0.8, 0.0, sym)) == pytest.approx(float(growth_rate(0.8, 0.0, m)))
    # a symmetric device may start drifting at another voltage in reverse (two different interfaces)
    skew = type(m)(**{**sym.to_dict(), "v_h_reverse_shift": 0.1})
    assert float(growth_rate(-0.8, 0.0, skew)) == pytest.approx(550 * 0.2 / 1.01)
    assert float(growth_rate(0.8, 0.0, skew)) == pytest.approx(550 * 0.3 / 1.01)
    assert float(growth_rate(-0.55, 0.0, skew)) == 0.0
    fast = type(m)(**{**skew.to_dict(), "mu_reverse_factor": 2.0})
    assert float(growth_rate(-0.8, 0.0, fast)) == pytest.approx(2 * 550 * 0.2 / 1.01)
    assert float(growth_rate(0.8, 0.0, fast)) == pytest.approx(550 * 0.3 / 1.01)
    with pytest.raises(ParameterError, match="v_h_reverse_shift"):
        type(m)(**{**m.to_dict(), "v_h_reverse_shift": 0.1})          # asymmetric: no reverse onset
    with pytest.raises(ParameterError, match="v_h_reverse_shift"):
        type(m)(**{**sym.to_dict(), "v_h_reverse_shift": -0.6})       # reverse onset below 0 V
    # field across the remaining gap: 1/(alpha + |1 - x|) grows as the filament bridges
    assert float(growth_rate(0.8, 0.99, m)) / float(growth_rate(0.8, 0.0, m)) == pytest.approx(1.01 / 0.02)


def test_ekv_strong_inversion_saturation_is_the_square_law():
    t = P.transistor  # beta = 2 n K
    k = t.beta / (2 * t.n)
    no_clm = EKV(v_t0=t.v_t0, n=t.n, beta=t.beta, lambda_clm=0.0, temperature=t.temperature)
    vg = jnp.array(1.5)
    i, _ = drain_current(vg, jnp.array(3.0), no_clm)
    assert float(i) == pytest.approx(k * (1.5 - t.v_t0) ** 2, rel=0.03)  # EKV -> square law within 3 %


def test_ekv_subthreshold_slope_is_n_ut_ln10():
    t = P.transistor
    u_t = K_B_OVER_Q * t.temperature
    vg = jnp.array([-0.1, 0.0])
    i, _ = drain_current(vg, jnp.array(0.5), t)
    per_decade = 0.1 / np.log10(float(i[1] / i[0]))
    assert per_decade == pytest.approx(t.n * u_t * np.log(10), rel=0.01)


def test_drain_current_derivative_matches_finite_difference():
    for tr in (P.transistor, SquareLaw(v_t=0.22, k=3.75e-4, lambda_clm=0.02)):
        for vg, vd in [(0.1, 0.3), (0.5, 0.05), (0.8, 0.7), (0.3, 0.01)]:
            h = 1e-7
            i1, d = drain_current(jnp.array(vg), jnp.array(vd), tr)
            ip, _ = drain_current(jnp.array(vg), jnp.array(vd + h), tr)
            im, _ = drain_current(jnp.array(vg), jnp.array(vd - h), tr)
            assert float(d) == pytest.approx(float(ip - im) / (2 * h), rel=1e-5, abs=1e-15)


@pytest.mark.parametrize("c_l", [0.0, 1e-12])
def test_drain_solve_satisfies_the_node_balance_everywhere(c_l):
    c, t = P.circuit, P.transistor
    vg = jnp.linspace(-0.2, 1.2, 141)
    for prev in (0.0, 0.25, c.v_dd):
        vd_prev = jnp.full_like(vg, prev)
        vd, i_d = solve_drain(vg, vd_prev, t, c.r_l, c.v_dd, c_l, 2e-6)
        balance = (c.v_dd - vd) / c.r_l - i_d - c_l / 2e-6 * (vd - vd_prev)
        assert np.all(np.abs(np.asarray(balance)) <= 1e-9 * c.v_dd / c.r_l)  # current balance to 1e-9 of full scale
        assert np.all((np.asarray(vd) >= 0) & (np.asarray(vd) <= c.v_dd))
    # transistor fully on: the drain current saturates near V_DD / R_l (docs/model.md §3.8)
    _, i_on = solve_drain(jnp.array([0.8]), jnp.array([c.v_dd]), t, c.r_l, c.v_dd, 0.0, 2e-6)
    assert float(i_on[0]) == pytest.approx(c.v_dd / c.r_l, rel=0.05)
