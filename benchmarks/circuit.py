"""Circuit-level throughput: ionspike vs ngspice on the same 1M1T1R neuron and stimulus.

One command:  python benchmarks/circuit.py            (add --quick for a short run, --json OUT for data)

For each batch size N it runs the paper preset on the 300 ms protocol (0.8 V, 1 ms on /
1 ms off, dt = 2 µs), deterministic and stochastic, and prints wall time, compile time
(first call minus a warm call), neuron-seconds simulated per wall-second, peak memory,
and the ratio to ngspice's neuron-seconds per wall-second measured in this same run on an
equivalent deck (behavioural sources for F and R, level-1 MOSFET, 2 µs maximum step).
It also prints the floor: XLA's count of floating-point work per neuron-step over this
machine's measured arithmetic and transcendental rates, and how far the code is from it.

A second table runs the same protocol with adaptive stepping (``--rtol``/``--atol``): accepted and
rejected steps per neuron, the lockstep loop's iterations, and the step reduction against the fixed
2 µs scheme. A third runs the stochastic fixed-step rows and the deterministic adaptive rows in
float32 (``precision="float32"``) next to their float64 twins: speed, mean first spike and fraction
fired.

The ngspice deck is ionspike.spice's export of the same neuron (level-1 transistor); its
time includes reading ngspice's raw output back.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import time

import numpy as np


PROTOCOL = dict(amplitude=0.8, width=1e-3, period=2e-3)
DT = 2e-6


def run_ngspice(n: int, t_stop: float, cap_s: float) -> tuple[float | None, float | None]:
    """(wall seconds, first spike of copy 0 in s), or (None, None) when ngspice is absent or capped."""
    import ionspike as isp
    from ionspike import spice

    if shutil.which("ngspice") is None:
        return None, None
    p = isp.presets.params("paper").deterministic()
    deck = spice.netlist(p, isp.PulseTrain(**PROTOCOL), duration=t_stop, dt=DT, n=n)
    t0 = time.perf_counter()
    try:
        ds = spice.run(deck, p, n=n, timeout=cap_s)
    except spice.NgspiceError:
        return None, None
    wall = time.perf_counter() - t0
    return wall, float(ds.spike_time.values[0, 0])


def machine_rates() -> dict:
    """Measured elementwise float64 FMA rate (flop/s) and exp rate (1/s) of this machine under XLA."""
    import jax
    import jax.numpy as jnp

    x = jnp.linspace(0.1, 0.9, 1 << 20)

    @jax.jit
    def fma(x):
        return jax.lax.fori_loop(0, 64, lambda i, y: y * 0.999 + 0.001, x)

    @jax.jit
    def exps(x):
        return jax.lax.fori_loop(0, 16, lambda i, y: jnp.exp(-y), x)

    def rate(f, ops):
        jax.block_until_ready(f(x))
        t0 = time.perf_counter()
        for _ in range(5):
            jax.block_until_ready(f(x))
        return ops * x.size * 5 / (time.perf_counter() - t0)

    return {"flops": rate(fma, 128), "exp": rate(exps, 16)}


def step_cost() -> dict:
    """XLA's flop and transcendental count of one neuron-step of the paper circuit."""
    import jax
    import jax.numpy as jnp

    import ionspike as isp
    from ionspike import circuit
    from ionspike.simulate import draw_spread

    p = jax.tree.map(jnp.asarray, isp.presets.params("paper").deterministic())
    draws = draw_spread(p, 1, 2, jax.random.key(0))
    s0 = circuit.rest_state(p, draws)
    f = jax.jit(lambda s, v: circuit.step(s, v, p, DT, None, draws))
    cost = f.lower(s0, jnp.array([0.8])).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return {"flops": float(cost.get("flops", 0)), "transcendentals": float(cost.get("transcendentals", 0))}


def run_ionspike(n: int, duration: float, deterministic: bool, tolerances: dict | None = None,
                 precision: str = "float64") -> dict:
    import ionspike as isp

    stim = isp.PulseTrain(**PROTOCOL)
    kw = dict(n=n, seed=1, dt=DT, deterministic=deterministic, signals=(), precision=precision, **(tolerances or {}))
    t0 = time.perf_counter()
    ds = isp.simulate("paper", stim, duration=duration, **kw)
    first_call = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds = isp.simulate("paper", stim, duration=duration, **kw)
    wall = time.perf_counter() - t0
    first = ds.spike_time.isel(spike=0).values
    adaptive = "steps_accepted" in ds
    return {"wall": wall, "compile": max(first_call - wall, 0.0), "spikes": int(ds.spike_count.sum()),
            "steps": float(ds.steps_accepted.mean()) if adaptive else duration / DT,
            "rejected": float(ds.steps_rejected.mean()) if adaptive else 0.0,
            "iterations": int(ds.attrs["loop_iterations"]) if adaptive else round(duration / DT),
            "first_spike_0": float(first[0]), "first_spike_mean": float(np.nanmean(first)),
            "fired": float(np.isfinite(first).mean()),
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,100,1000,10000,100000")
    ap.add_argument("--duration", type=float, default=0.3, help="s of simulated time per run")
    ap.add_argument("--budget", type=float, default=5e9,
                    help="max neuron-steps per ionspike run; larger N run a shorter window (printed)")
    ap.add_argument("--ngspice-sizes", default="1,10")
    ap.add_argument("--ngspice-cap", type=float, default=300.0, help="s, cap per ngspice run")
    ap.add_argument("--quick", action="store_true", help="sizes 1,1000 and ngspice N=1 only")
    ap.add_argument("--rtol", type=float, default=1e-4, help="adaptive rows: relative tolerance")
    ap.add_argument("--atol", type=float, default=1e-7, help="adaptive rows: absolute tolerance")
    ap.add_argument("--json", default=None, help="also write the rows as JSON to this file")
    ap.add_argument("--host-devices", type=int, default=os.cpu_count(),
                    help="CPU devices XLA exposes (one per core lets ionspike split big batches; 1 = off)")
    args = ap.parse_args(argv)
    if "jax" in sys.modules:
        print("note: jax already imported; --host-devices has no effect")
    elif args.host_devices and args.host_devices > 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={args.host_devices}").strip()
    if args.quick:
        args.sizes, args.ngspice_sizes = "1,1000", "1"
    sizes = [int(s) for s in args.sizes.split(",")]
    import jax

    print(f"ionspike circuit benchmark — jax {jax.__version__} on {jax.devices()[0].platform}, "
          f"{os.cpu_count()} cores, {len(jax.devices())} XLA device(s) (batches of >= 4096 neurons per device "
          f"are split); paper preset, 0.8 V 1 ms/2 ms pulses, dt = {DT * 1e6:g} us")

    # peer: ngspice, same circuit and stimulus, measured now
    ng_rate = None
    for n in [int(s) for s in args.ngspice_sizes.split(",") if s]:
        wall, first = run_ngspice(n, args.duration, args.ngspice_cap)
        if wall is None:
            print(f"ngspice N={n}: not measured ({'not installed' if not shutil.which('ngspice') else 'over the cap'})")
            continue
        ng_rate = n * args.duration / wall
        print(f"ngspice  N={n:>6}: wall {wall:8.2f} s   {ng_rate:10.4f} neuron-s/s   first spike {first * 1e3:.3f} ms")
    if ng_rate is None:
        print("no ngspice measurement in this run: ratios below are not printed")

    cost, rates = step_cost(), machine_rates()
    core_floor_ns = (cost["flops"] / rates["flops"] + cost["transcendentals"] / rates["exp"]) * 1e9
    n_dev = len(jax.devices())
    print(f"work per neuron-step: {cost['flops']:.0f} flop + {cost['transcendentals']:.0f} transcendental; "
          f"one device: {rates['flops'] / 1e9:.2f} Gflop/s, {rates['exp'] / 1e9:.3f} G exp/s (float64, XLA) -> "
          f"floor {core_floor_ns:.2f} ns/neuron-step on one device, {core_floor_ns / n_dev:.2f} on {n_dev} "
          f"(XLA counts the sub-step loop body once more, so this floor errs high for quiet steps)")

    header = f"{'mode':13s} {'N':>7s} {'sim s':>6s} {'wall s':>8s} {'compile s':>9s} {'neuron-s/s':>11s} " \
             f"{'ns/n-step':>9s} {'x floor':>7s} {'x ngspice':>9s} {'peak GiB':>8s} {'spikes':>8s}"
    print(header)
    rows = []
    for deterministic in (True, False):
        for n in sizes:
            duration = min(args.duration, args.budget / n * DT)
            duration = max(DT * 1000, round(duration / 2e-3) * 2e-3)
            r = run_ionspike(n, duration, deterministic)
            rate = n * duration / r["wall"]
            ns = r["wall"] / (n * duration / DT) * 1e9
            used = n_dev if (n_dev > 1 and n % n_dev == 0 and n >= 4096 * n_dev) else 1
            floor_ns = core_floor_ns / used
            ratio = f"{rate / ng_rate:9.0f}" if ng_rate else f"{'-':>9s}"
            print(f"{'deterministic' if deterministic else 'stochastic':13s} {n:7d} {duration:6.3f} {r['wall']:8.2f} "
                  f"{r['compile']:9.2f} {rate:11.2f} {ns:9.2f} {ns / floor_ns:7.1f} {ratio} "
                  f"{r['peak_rss_gib']:8.2f} {r['spikes']:8d}", flush=True)
            rows.append(_row("fixed", deterministic, n, duration, r, rate, ng_rate))

    # adaptive stepping (error-controlled, per neuron): steps and wall time on the same protocol
    tol = {"rtol": args.rtol, "atol": args.atol}
    print(f"\nadaptive stepping, rtol = {args.rtol:g}, atol = {args.atol:g} (steps per neuron: accepted / rejected; "
          f"iterations: the lockstep loop's, every neuron waits for the slowest)")
    print(f"{'mode':13s} {'N':>7s} {'sim s':>6s} {'wall s':>8s} {'compile s':>9s} {'neuron-s/s':>11s} {'steps':>8s} "
          f"{'rejected':>8s} {'iters':>7s} {'x ngspice':>9s} {'x fixed':>7s}")
    for deterministic in (True, False):
        for n in sizes:
            duration = min(args.duration, args.budget / n * DT)
            duration = max(DT * 1000, round(duration / 2e-3) * 2e-3)
            r = run_ionspike(n, duration, deterministic, tol)
            rate = n * duration / r["wall"]
            fixed = next(x for x in rows if x["n"] == n and x["mode"] == _mode(deterministic))
            ratio = f"{rate / ng_rate:9.0f}" if ng_rate else f"{'-':>9s}"
            print(f"{_mode(deterministic):13s} {n:7d} {duration:6.3f} {r['wall']:8.2f} {r['compile']:9.2f} {rate:11.2f} "
                  f"{r['steps']:8.0f} {r['rejected']:8.0f} {r['iterations']:7d} {ratio} "
                  f"{fixed['wall_s'] / r['wall']:7.2f}", flush=True)
            rows.append(_row("adaptive", deterministic, n, duration, r, rate, ng_rate))
    # float32 (simulate(precision="float32")): the stochastic fixed-step rows and the deterministic adaptive
    # rows again, next to their float64 twins
    print("\nfloat32 next to float64 (first spike: mean over the neurons that fired; P: fraction fired)")
    print(f"{'stepping':8s} {'mode':13s} {'N':>7s} {'sim s':>6s} {'wall s':>8s} {'neuron-s/s':>11s} {'x float64':>9s} "
          f"{'x ngspice':>9s} {'first f32':>9s} {'first f64':>9s} {'P f32':>6s} {'P f64':>6s}")
    for stepping, deterministic in (("fixed", False), ("adaptive", True)):
        for n in sizes:
            duration = min(args.duration, args.budget / n * DT)
            duration = max(DT * 1000, round(duration / 2e-3) * 2e-3)
            r = run_ionspike(n, duration, deterministic, tol if stepping == "adaptive" else None, precision="float32")
            rate = n * duration / r["wall"]
            f64 = next(x for x in rows if x["n"] == n and x["mode"] == _mode(deterministic)
                       and x["stepping"] == stepping)
            ratio = f"{rate / ng_rate:9.0f}" if ng_rate else f"{'-':>9s}"
            print(f"{stepping:8s} {_mode(deterministic):13s} {n:7d} {duration:6.3f} {r['wall']:8.2f} {rate:11.2f} "
                  f"{f64['wall_s'] / r['wall']:9.2f} {ratio} {r['first_spike_mean'] * 1e3:9.3f} "
                  f"{f64['first_spike_mean'] * 1e3:9.3f} {r['fired']:6.3f} {f64['fired']:6.3f}", flush=True)
            rows.append(_row(stepping, deterministic, n, duration, r, rate, ng_rate, "float32"))
    first = next(x for x in rows if x["stepping"] == "adaptive" and x["mode"] == "deterministic"
                 and x["n"] == sizes[0] and x["precision"] == "float64")
    reduction = (first["duration_s"] / DT) / first["steps_per_neuron"]
    print(f"step reduction on the protocol (fixed {DT * 1e6:g} us steps over adaptive accepted steps, N = {sizes[0]}, "
          f"deterministic): {reduction:.1f}x")
    if args.json:
        import json

        doc = {"device": jax.devices()[0].platform, "cores": os.cpu_count(), "ngspice_neuron_s_per_s": ng_rate,
               "ngspice_note": "best case: one single-neuron deck timed, times N (independent decks in parallel)",
               "rtol": args.rtol, "atol": args.atol, "rows": rows, "step_reduction": reduction}
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=1)
        print(f"wrote {args.json}")
    return 0


def _mode(deterministic: bool) -> str:
    return "deterministic" if deterministic else "stochastic"


def _row(stepping, deterministic, n, duration, r, rate, ng_rate, precision="float64") -> dict:
    return {"stepping": stepping, "precision": precision, "mode": _mode(deterministic), "n": n, "duration_s": duration,
            "steps_per_neuron": r["steps"], "rejected_per_neuron": r["rejected"], "loop_iterations": r["iterations"],
            "wall_s": r["wall"], "compile_s": r["compile"], "neuron_s_per_s": rate,
            "x_ngspice": rate / ng_rate if ng_rate else None, "spikes": r["spikes"],
            "first_spike_mean": r["first_spike_mean"], "fired": r["fired"]}


if __name__ == "__main__":
    sys.exit(main())
