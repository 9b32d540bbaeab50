"""Circuit-level throughput: ionspike vs ngspice on the same 1M1T1R neuron and stimulus.

One command:  python benchmarks/circuit.py            (add --quick for a short run)

For each batch size N it runs the paper preset on the 300 ms protocol (0.8 V, 1 ms on /
1 ms off, dt = 2 µs), deterministic and stochastic, and prints wall time, compile time
(first call minus a warm call), neuron-seconds simulated per wall-second, peak memory,
and the ratio to ngspice's neuron-seconds per wall-second measured in this same run on an
equivalent deck (behavioural sources for F and R, level-1 MOSFET, 2 µs maximum step).
It also prints the floor: XLA's count of floating-point work per neuron-step over this
machine's measured arithmetic and transcendental rates, and how far the code is from it.

The ngspice deck here is a timing reference written for this benchmark; the validated
netlist export (and its cross-check) is ionspike.spice's job, not this file's.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

PROTOCOL = dict(amplitude=0.8, width=1e-3, period=2e-3)
DT = 2e-6


def ngspice_deck(n: int, t_stop: float) -> str:
    """N independent copies of the paper-preset neuron (timing reference)."""
    lines = [
        "* 1M1T1R paper preset, N copies (timing reference deck)",
        ".param mu=550 vh=0.5 alpha=0.01 beta=20 g1=600 g2=5 lam=0.2 ron=1e6 roff=1e12 cg=10p rc=250meg rl=47k",
        ".func xb(a,b) {min(max(a+b,0),1)}",
        "Vin in 0 PULSE(0 0.8 0 1n 1n 1m 2m)",
        "Vdd vdd 0 0.5",
        ".model nch nmos level=1 vto=0.22 kp=7.5e-4 lambda=0.02",
        ".subckt neuron in vdd",
        "Cf f 0 1",
        "Cr r 0 1",
        "Bf 0 f I = {mu}*max(v(in)-v(g)-{vh},0)/({alpha}+abs(1-v(f)-v(r))) - ({g1}+{beta})*v(f)",
        "Br 0 r I = {beta}*v(f) - {g2}*v(r)",
        "Bdm in g I = (v(in)-v(g))/max({ron}*xb(v(f),v(r)) + {roff}*(exp((1-xb(v(f),v(r)))/{lam})-1)"
        "/(exp(1/{lam})-1), {ron})",
        "Cg g 0 {cg}",
        "Rc g 0 {rc}",
        "M1 d g 0 0 nch",
        "Rl vdd d {rl}",
        "Cl d 0 1p",
        ".ends",
    ]
    lines += [f"X{i} in vdd neuron" for i in range(n)]
    lines += [".options reltol=1e-4", f".tran {DT:g} {t_stop:g} 0 {DT:g} uic",
              ".control", "run", "meas tran tfirst when v(x0.g)=0.22 rise=1", "quit", ".endc", ".end"]
    return "\n".join(lines) + "\n"


def run_ngspice(n: int, t_stop: float, cap_s: float) -> tuple[float | None, float | None]:
    """(wall seconds, first spike of copy 0 in s), or (None, None) when ngspice is absent or capped."""
    exe = shutil.which("ngspice")
    if exe is None:
        return None, None
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "deck.cir")
        with open(path, "w") as f:
            f.write(ngspice_deck(n, t_stop))
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([exe, "-b", path], capture_output=True, text=True, timeout=cap_s)
        except subprocess.TimeoutExpired:
            return None, None
        wall = time.perf_counter() - t0
    first = None
    for line in proc.stdout.splitlines():
        if line.strip().startswith("tfirst"):
            first = float(line.split("=")[1].split()[0])
    return wall, first


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


def run_ionspike(n: int, duration: float, deterministic: bool) -> dict:
    import ionspike as isp

    stim = isp.PulseTrain(**PROTOCOL)
    kw = dict(n=n, seed=1, dt=DT, deterministic=deterministic, signals=())
    t0 = time.perf_counter()
    ds = isp.simulate("paper", stim, duration=duration, **kw)
    first_call = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds = isp.simulate("paper", stim, duration=duration, **kw)
    wall = time.perf_counter() - t0
    first = ds.spike_time.isel(spike=0).values
    return {"wall": wall, "compile": max(first_call - wall, 0.0), "spikes": int(ds.spike_count.sum()),
            "first_spike_0": float(first[0]),
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
          f"floor {core_floor_ns:.2f} ns/neuron-step on one device, {core_floor_ns / n_dev:.2f} on {n_dev}")

    header = f"{'mode':13s} {'N':>7s} {'sim s':>6s} {'wall s':>8s} {'compile s':>9s} {'neuron-s/s':>11s} " \
             f"{'ns/n-step':>9s} {'x floor':>7s} {'x ngspice':>9s} {'peak GiB':>8s} {'spikes':>8s}"
    print(header)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
