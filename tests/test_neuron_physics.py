"""The must-show physics of the 1M1T1R simulator (issue: core simulator).

Each test states its target and tolerance next to the assertion. Published numbers are
from docs/model.md §5.1 (paper values [SI]).
"""

import numpy as np
import pytest

import ionspike as isp
from ionspike import metrics

PULSES = isp.PulseTrain(amplitude=0.8, width=1e-3, period=2e-3)  # Fig. 2e protocol: 0.8 V, 1 ms on / 1 ms off
RC_SWEEP = np.array([50e6, 100e6, 250e6, 500e6, 1e9])           # Fig. 4d
PAPER_ISI_MS = np.array([2.25, 2.3, 4.0, 8.0, 23.8])            # Fig. 4d mean ISI


@pytest.fixture(scope="module")
def paper_300ms():
    return isp.simulate("paper", PULSES, duration="300 ms", deterministic=True)


@pytest.fixture(scope="module")
def rc_sweep():
    p = isp.replace(isp.presets.params("paper"), Rc=RC_SWEEP)
    return isp.simulate(p, PULSES, duration="1 s", deterministic=True, signals=())


def test_first_spike_matches_fig_2e(paper_300ms):
    first = metrics.spike_times(paper_300ms, 0)[0]
    # paper: ~88 ms (Fig. 2e); tolerance +-15 % (issue); the documented run (docs/model.md §4.3): 90.9 ms
    assert first == pytest.approx(88e-3, rel=0.15)


def test_mean_isi_follows_rc_like_fig_4d(rc_sweep):
    # steady state: ISIs of spikes after the first 0.5 s of a 1 s run (the residue has built up)
    isi = np.array([metrics.isi(rc_sweep, i, after=0.5).mean() for i in range(len(RC_SWEEP))]) * 1e3
    # each within +-35 % of 2.25 / 2.3 / 4 / 8 / 23.8 ms (issue tolerance)
    assert isi == pytest.approx(PAPER_ISI_MS, rel=0.35), f"ISI {isi} ms vs paper {PAPER_ISI_MS} ms"
    # non-decreasing in R_c: at 50 and 100 MOhm both fire once per input period (2 ms), so they may tie;
    # allow a 1 % tie tolerance there
    assert isi[1] >= isi[0] * 0.99
    # strictly increasing from 100 MOhm on (refractory time ~ R_c C_g)
    assert np.all(np.diff(isi[1:]) > 0)


def test_no_latch_one_turn_on_per_output_spike(paper_300ms, rc_sweep):
    # 300 ms protocol at 250 MOhm: exactly one DM turn-on per output spike
    assert int(paper_300ms.dm_on_count[0]) == int(paper_300ms.spike_count[0]) > 10
    # over 1 s at 250 MOhm: each spike follows its own turn-on within 50 us; a turn-on in the last
    # microseconds of an input pulse can abort without a spike (the gate cannot charge once V_in drops),
    # so allow at most 2 % more turn-ons than spikes
    i = int(np.where(RC_SWEEP == 250e6)[0][0])
    n_on, n_spk = int(rc_sweep.dm_on_count[i]), int(rc_sweep.spike_count[i])
    assert n_spk > 100 and n_spk <= n_on <= 1.02 * n_spk
    on = metrics.spike_times(rc_sweep, i, "dm_on_time")
    spk = metrics.spike_times(rc_sweep, i)
    lag = spk - on[np.searchsorted(on, spk, side="right") - 1]
    assert np.all((lag >= 0) & (lag < 50e-6))


def test_si_exact_latches_where_the_paper_model_does_not():
    # contrast: the transcribed SI model (v_h = 0) latches at 250 MOhm: many turn-ons per output spike
    ds = isp.simulate("si-exact", PULSES, duration="300 ms", signals=())
    assert int(ds.dm_on_count[0]) > 3 * max(int(ds.spike_count[0]), 1)


def test_si_exact_first_turn_on_at_dc_0p8():
    ds = isp.simulate("si-exact", isp.DC(0.8), duration="40 ms", signals=())
    first_on = metrics.spike_times(ds, 0, "dm_on_time")[0]
    # dm_SNN and ngspice: 34.92 ms; tolerance +-1 % (issue)
    assert first_on == pytest.approx(34.9e-3, rel=0.01)


def test_energy_balance_closes(paper_300ms):
    drawn = float(paper_300ms.energy_input[0] + paper_300ms.energy_supply[0])
    residual = float(metrics.energy_balance(paper_300ms)[0])
    # |E_in - (E_dissipated + dE_stored)| <= 1e-3 E_in (issue); the scheme closes it to rounding
    assert abs(residual) <= 1e-3 * drawn
    assert abs(residual) <= 1e-9 * drawn
    # the gate side closes on its own: E_input = E_dm + E_rc + dE_Cg
    gate = float(paper_300ms.energy_input[0] - paper_300ms.energy_dm[0] - paper_300ms.energy_rc[0]
                 - paper_300ms.energy_stored_cg[0])
    assert abs(gate) <= 1e-9 * float(paper_300ms.energy_input[0])


def test_input_energy_per_spike_is_cg_vin_squared(paper_300ms):
    # docs/model.md §2.9: the input charges C_g to ~V_in once per spike, E ~ C_g V_in^2 (6.4 pJ at 0.8 V, 10 pF);
    # half is lost in the DM at switch-on and half later in R_c. Tolerance 10 %.
    n = int(paper_300ms.spike_count[0])
    e_in = float(paper_300ms.energy_input[0]) / n
    assert e_in == pytest.approx(10e-12 * 0.8**2, rel=0.10, abs=0)
    e_dm, e_rc = float(paper_300ms.energy_dm[0]) / n, float(paper_300ms.energy_rc[0]) / n
    assert e_dm == pytest.approx(e_in / 2, rel=0.15, abs=0) and e_rc == pytest.approx(e_in / 2, rel=0.15, abs=0)


def test_halving_dt_changes_first_spike_by_less_than_1_percent():
    t = {}
    for dt in (4e-6, 2e-6, 1e-6):
        ds = isp.simulate("paper", PULSES, duration="120 ms", dt=dt, deterministic=True, signals=())
        t[dt] = metrics.spike_times(ds, 0)[0]
    assert abs(t[2e-6] - t[1e-6]) < 0.01 * t[1e-6]   # issue: < 1 %
    assert abs(t[4e-6] - t[2e-6]) < 0.01 * t[2e-6]
    # and the error shrinks as dt does
    assert abs(t[2e-6] - t[1e-6]) <= abs(t[4e-6] - t[2e-6])


def test_gate_rc_charging_matches_the_analytic_solution():
    # known limit: no filament growth (mu = 0) -> the gate is a linear RC divider fed through R_off
    p = isp.replace(isp.presets.params("paper"), mu=0.0, Roff="1 GOhm")
    ds = isp.simulate(p, isp.DC(0.8), duration="40 ms", dt=10e-6, deterministic=True, signals=("V_g",))
    r_d, r_c, c_g = 1e9, 250e6, 10e-12
    v_inf = 0.8 * r_c / (r_c + r_d)
    tau = c_g / (1 / r_d + 1 / r_c)
    t = ds.time.values
    expected = v_inf * (1 - np.exp(-t / tau))
    # the exponential update is exact for frozen R_d: agreement to rounding
    assert np.max(np.abs(ds.V_g.values[:, 0] - expected)) < 1e-12


def test_filament_decay_is_second_order_in_dt():
    # F relaxes at gamma1 + beta when nothing drives it; the midpoint scheme's error must shrink ~ dt^2
    from ionspike import circuit, precision
    from ionspike.simulate import draw_spread
    import jax
    import jax.numpy as jnp

    with precision.float64():   # the circuit law in float64, as simulate runs it
        p = jax.tree.map(jnp.asarray, isp.presets.params("paper").deterministic())
        draws = draw_spread(p, 1, 2, jax.random.key(0))
        k = 600.0 + 20.0
        errs, dts = [], [40e-6, 20e-6, 10e-6, 5e-6]
        for dt in dts:
            s = circuit.rest_state(p, draws)._replace(F=jnp.array([0.5]))
            run = jax.jit(lambda s, dt=dt: jax.lax.fori_loop(
                0, int(round(2e-3 / dt)), lambda i, s: circuit.step(s, jnp.array([0.0]), p, dt, None, draws)[0], s))
            s = run(s)
            errs.append(abs(float(s.F[0]) - 0.5 * np.exp(-k * 2e-3)))
    slope = np.polyfit(np.log(dts), np.log(errs), 1)[0]
    assert slope == pytest.approx(2.0, abs=0.15), f"observed order {slope:.2f}"
