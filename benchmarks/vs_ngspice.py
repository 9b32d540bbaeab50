"""ionspike vs ngspice on the same exported neurons: wall time, throughput ratio, agreement.

One command:  python benchmarks/vs_ngspice.py        (needs ngspice on PATH)

For N = 1, 10, 100, 1000 deterministic paper-preset neurons with device-to-device spread
(sigma_ln_mu = 0.1, so the copies differ), 0.8 V 1 ms / 2 ms pulses for 300 ms, it runs
ionspike.simulate and the exported netlist in ngspice (capped at --cap seconds per point,
default 300), and prints both wall times, the ratio of neuron-seconds per wall-second, and
the median and largest relative difference of the copies' first-spike times.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,10,100,1000")
    ap.add_argument("--duration", type=float, default=0.3)
    ap.add_argument("--cap", type=float, default=300.0, help="s, cap per ngspice run")
    args = ap.parse_args(argv)
    os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={os.cpu_count()}")
    import ionspike as isp
    from ionspike import spice
    from ionspike.simulate import device_spread

    p = isp.replace(isp.presets.params("paper").deterministic(), sigma_d2d=0.1)
    stim = isp.PulseTrain(0.8, 1e-3, 2e-3)
    dt = 2e-6
    print(f"ionspike vs ngspice: paper preset, sigma_d2d = 0.1, 0.8 V 1 ms/2 ms, {args.duration:g} s, dt = max step "
          f"= {dt * 1e6:g} us")
    print(f"{'N':>5s} {'ionspike s':>11s} {'ngspice s':>10s} {'ratio':>9s} {'first-spike diff median':>24s} {'max':>9s}")
    for n in [int(s) for s in args.sizes.split(",")]:
        isp.simulate(p, stim, duration=args.duration, n=n, seed=1, dt=dt, signals=())     # compile
        t0 = time.perf_counter()
        ours = isp.simulate(p, stim, duration=args.duration, n=n, seed=1, dt=dt, signals=())
        t_ours = time.perf_counter() - t0
        deck = spice.netlist(p, stim, duration=args.duration, dt=dt, n=n, mu_scale=device_spread(p, n, 1))
        t0 = time.perf_counter()
        try:
            theirs = spice.run(deck, p, n=n, timeout=args.cap)
            t_ng = time.perf_counter() - t0
        except spice.NgspiceError as exc:
            print(f"{n:5d} {t_ours:11.2f} {'> cap':>10s} {'> %.0f' % (args.cap / t_ours):>9s}   ({str(exc).splitlines()[0]})")
            continue
        a, b = ours.spike_time.values[:, 0], theirs.spike_time.values[:, 0]
        ok = np.isfinite(a) & np.isfinite(b)
        diff = np.abs(a[ok] - b[ok]) / b[ok]
        med = f"{np.median(diff):.2e}" if diff.size else "-"
        mx = f"{np.max(diff):.2e}" if diff.size else "-"
        print(f"{n:5d} {t_ours:11.2f} {t_ng:10.2f} {t_ng / t_ours:9.1f} {med:>24s} {mx:>9s}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
