"""Network-level speed: ionspike against Brian2, a plain NumPy version and snnTorch, in one run.

One command:  pip install -r benchmarks/requirements-network.txt && python benchmarks/network.py
(``--quick`` for a short run; ``--n``/``--seconds`` to change part (a); ``--part simulation|training``;
``--json OUT``).

(a) Simulation: N = 4000 1M1T1R neurons (paper preset, deterministic), 10 % random recurrent
    connectivity, 1 s of activity. Every neuron receives 1 ms-on / 1 ms-off voltage pulses;
    the amplitude of bin k is ``clip(a0_i + sum_j W_ij s_j(k-1), 0, 1.2 V)`` with ``a0_i`` drawn in
    0.75-0.95 V and ``W_ij ~ 0.1 V N(0, 1)/sqrt(0.1 N)``. All three step the same (F, R, V_g)
    equations with 16 steps per pulse phase (62.5 µs):
      * ionspike: ``network.neuron.bin_step``, the network layer's bin scheme (16 midpoint sub-steps
        on the pulse, the bridge as an event, the off phase exact), jitted ``lax.scan`` over bins,
        recurrent input by ``segment_sum`` over the synapse list;
      * NumPy: explicit midpoint on both phases (16 + 16 steps, exact exponential gate update),
        recurrent input by a SciPy CSR product;
      * Brian2 (``cython`` and ``cpp_standalone``): F and R by midpoint (rk2), V_g by its exact exponential
        update (it is stiff: R_on C_g = 10 µs), ``Synapses`` with ``on_pre``, the bin's amplitude set
        by ``run_regularly``. Spike: V_g crossing V_T upward (refractory while V_g > V_T).
    Reported: total wall time including compilation/code generation, and spikes (a sanity check
    that the three simulate the same network).
(b) Training throughput (``--part training``): RSNN with 256 hidden, 40 inputs, 100 time steps, batch
    64, BPTT with Adam, spike-count readout, samples per second after warm-up: ionspike's 1M1T1R
    cell as ``ionspike train`` uses it (one 2 ms bin per step, ``Bin(ready_width=0.02)``: 4 midpoint
    sub-steps on the pulse, exact off phase, the default spike-surrogate gate, chemical-Langevin
    noise of the paper preset), the same cell without
    noise, and ionspike's LIF cell, against snnTorch's ``RLeaky`` (same shapes, spike-count
    readout, cross-entropy). Targets (issue 13): 1M1T1R >= 1x snnTorch RLeaky, stretch >= 0.5x
    ionspike's LIF. ``--json OUT`` writes the samples/s and the sizes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time

import numpy as np

PERIOD, WIDTH, SUB = 2e-3, 1e-3, 16
H = WIDTH / SUB   # 62.5 us, both phases


def network(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    a0 = rng.uniform(0.75, 0.95, n)
    k = int(0.1 * n)
    pre = np.concatenate([rng.choice(n, k, replace=False) for _ in range(n)])
    post = np.repeat(np.arange(n), k)
    w = 0.1 * rng.standard_normal(pre.size) / math.sqrt(k)
    return a0, pre, post, w


# ----------------------------------------------------------------------------- ionspike
def run_ionspike(n: int, bins: int):
    import jax
    import jax.numpy as jnp

    import ionspike as isp
    from ionspike.network import neuron as N

    a0, pre, post, w = network(n)
    p = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), isp.presets.params("paper").deterministic())
    spec = N.Bin(width=WIDTH, period=PERIOD, substeps_on=SUB)
    a0, pre, post, w = (jnp.asarray(a0, jnp.float32), jnp.asarray(pre), jnp.asarray(post), jnp.asarray(w, jnp.float32))

    @jax.jit
    def simulate():
        def body(carry, _):
            state, s_prev = carry
            rec = jax.ops.segment_sum(w * s_prev[pre], post, num_segments=n)
            state, s = N.bin_step(state, jnp.clip(a0 + rec, 0.0, 1.2), p, spec)
            return (state, s), s.sum()

        _, counts = jax.lax.scan(body, (N.rest((n,)), jnp.zeros(n, jnp.float32)), None, length=bins)
        return counts.sum()

    t0 = time.perf_counter()
    spikes = float(simulate())
    total = time.perf_counter() - t0
    t1 = time.perf_counter()
    float(simulate())
    return {"wall_s": total, "warm_s": time.perf_counter() - t1, "spikes": int(spikes)}


# ----------------------------------------------------------------------------- NumPy
def run_numpy(n: int, bins: int):
    import scipy.sparse as sp

    import ionspike as isp

    pr = isp.presets.params("paper")
    m, c, v_t = pr.memristor, pr.circuit, pr.transistor.threshold
    mu, vh, al, g1, be, g2, lam = (float(m.mu), float(m.v_h), float(m.alpha), float(m.gamma1), float(m.beta),
                                   float(m.gamma2), float(m.lam))
    r_on, r_off, r_c, c_g = float(m.r_on), float(m.r_off), float(c.r_c), float(c.c_g)
    a0, pre, post, w = network(n)
    t0 = time.perf_counter()
    W = sp.csr_matrix((w, (post, pre)), shape=(n, n))
    den = math.expm1(-1.0 / lam)

    def rd(x):
        xb = np.clip(x, 0.0, 1.0)
        return np.maximum(r_on * xb + r_off * np.exp(-xb / lam) * np.expm1(-(1.0 - xb) / lam) / den, r_on)

    def rates(F, R, vm):
        a = mu * np.maximum(vm - vh, 0.0) / (al + np.abs(1.0 - F - R))
        return a - (g1 + be) * F, be * F - g2 * R

    def gate(V, vin, r, h):
        g = 1.0 / r + 1.0 / r_c
        vinf = vin / r / g
        return vinf + (V - vinf) * np.exp(-h * g / c_g)

    F, R, V = np.zeros(n), np.zeros(n), np.zeros(n)
    s_prev, spikes = np.zeros(n), 0
    for _ in range(bins):
        amp = np.clip(a0 + W @ s_prev, 0.0, 1.2)
        crossed = np.zeros(n, bool)
        for vin in (amp, np.zeros(n)):
            for _ in range(SUB):
                df, dr = rates(F, R, vin - V)
                Fh, Rh = np.maximum(F + 0.5 * H * df, 0), np.maximum(R + 0.5 * H * dr, 0)
                Vh = gate(V, vin, rd(F + R), 0.5 * H)
                df, dr = rates(Fh, Rh, vin - Vh)
                Fn, Rn = np.maximum(F + H * df, 0), np.maximum(R + H * dr, 0)
                Vn = gate(V, vin, rd(Fh + Rh), H)
                Fn = np.minimum(Fn, np.maximum(F, 1.0 - Rn))
                crossed |= (V < v_t) & (Vn >= v_t)
                F, R, V = Fn, Rn, Vn
        s_prev = crossed.astype(float)
        spikes += int(crossed.sum())
    return {"wall_s": time.perf_counter() - t0, "spikes": spikes}


# ----------------------------------------------------------------------------- Brian2
def run_brian2(n: int, bins: int, target: str):
    import brian2 as b2

    import ionspike as isp

    b2.start_scope()
    b2.prefs.codegen.target = "cython" if target == "cython" else "numpy"
    workdir = None
    if target == "cpp_standalone":
        workdir = tempfile.mkdtemp(prefix="brian2_standalone_")
        b2.set_device("cpp_standalone", directory=workdir, build_on_run=True)
    pr = isp.presets.params("paper")
    m, c = pr.memristor, pr.circuit
    ns = {"mu": float(m.mu), "vh": float(m.v_h), "al": float(m.alpha), "g1": float(m.gamma1) * b2.Hz,
          "be": float(m.beta) * b2.Hz, "g2": float(m.gamma2) * b2.Hz, "lam": float(m.lam), "r_on": float(m.r_on),
          "r_off": float(m.r_off), "r_c": float(c.r_c), "c_g": float(c.c_g), "v_t": float(pr.transistor.threshold),
          "den": math.expm1(-1.0 / float(m.lam)), "h": H, "width": WIDTH * b2.second, "period": PERIOD * b2.second}
    eqs = """
    dF/dt = mu * clip(vin - V - vh, 0, 1e9) / (al + abs(1 - F - R)) * Hz - (g1 + be) * F : 1
    dR/dt = be * F - g2 * R : 1
    vin = a_in * int((t % period) < width) : 1
    V : 1
    a_in : 1
    a0 : 1
    syn_in : 1
    """
    a0, pre, post, w = network(n)
    t0 = time.perf_counter()
    G = b2.NeuronGroup(n, eqs, threshold="V > v_t", refractory="V > v_t", method="rk2", namespace=ns)
    G.a0 = a0
    # the gate: exact exponential update for the R_d of this step (stiff: R_on C_g = 10 us)
    G.run_regularly("""
        xb = clip(F + R, 0, 1)
        rd = clip(r_on * xb + r_off * exp(-xb / lam) * (exp(-(1 - xb) / lam) - 1) / den, r_on, 1e30)
        gg = 1 / rd + 1 / r_c
        vinf = vin / rd / gg
        V = vinf + (V - vinf) * exp(-h * gg / c_g)
        """, dt=H * b2.second, when="before_thresholds")
    G.run_regularly("a_in = clip(a0 + syn_in, 0, 1.2)\nsyn_in = 0", dt=PERIOD * b2.second, when="start")
    S = b2.Synapses(G, G, "w : 1", on_pre="syn_in_post += w")
    S.connect(i=pre, j=post)
    S.w = w
    mon = b2.SpikeMonitor(G, record=False)
    b2.defaultclock.dt = H * b2.second
    b2.run(bins * PERIOD * b2.second, namespace=ns)
    spikes = int(mon.num_spikes)
    wall = time.perf_counter() - t0
    if target == "cpp_standalone":
        b2.device.reinit()
        b2.device.activate()
        b2.set_device("runtime")
        shutil.rmtree(workdir, ignore_errors=True)
    return {"wall_s": wall, "spikes": spikes}


# ----------------------------------------------------------------------------- training
SIZES = {"batch": 64, "steps": 100, "n_in": 40, "hidden": 256}


def train_ionspike(cell_kind: str, batch=64, steps=100, n_in=40, hidden=256, iters=5):
    """Samples/s of BPTT training steps; ``cell_kind``: 1m1t1r (stochastic, as trained),
    1m1t1r_deterministic or lif."""
    import jax
    import jax.numpy as jnp

    import ionspike as isp
    from ionspike.network import cells, rsnn
    from ionspike.network.neuron import Bin
    from ionspike.network.train import DEFAULT_READY_WIDTH

    spec = Bin()
    if cell_kind.startswith("1m1t1r"):
        cell = cells.DeviceCell(isp.presets.params("paper"), Bin(ready_width=DEFAULT_READY_WIDTH["1m1t1r"]),
                                stochastic=cell_kind == "1m1t1r")
    else:
        cell = cells.LIFCell(spec)
    net = rsnn.RSNN(n_in=n_in, cell=cell, hidden=hidden, n_out=10, bins_per_step=1, readout="count")
    w, inst = net.init(jax.random.PRNGKey(0)), net.draws(jax.random.PRNGKey(1))
    opt_spec = (1e-3, 1000)
    state = rsnn.optimizer(*opt_spec).init(w)
    x = jax.random.uniform(jax.random.PRNGKey(2), (batch, steps, n_in), jnp.float32)
    y = jax.random.randint(jax.random.PRNGKey(3), (batch,), 0, 10)
    w, state, loss, _ = rsnn.train_step(w, state, inst, x, y, jax.random.PRNGKey(4), net=net, opt_spec=opt_spec)
    loss.block_until_ready()
    t0 = time.perf_counter()
    for i in range(iters):
        w, state, loss, _ = rsnn.train_step(w, state, inst, x, y, jax.random.PRNGKey(5 + i), net=net, opt_spec=opt_spec)
    loss.block_until_ready()
    return batch * iters / (time.perf_counter() - t0)


def train_snntorch(batch=64, steps=100, n_in=40, hidden=256, iters=5):
    import snntorch as snn
    import torch

    torch.manual_seed(0)
    fc_in = torch.nn.Linear(n_in, hidden)
    lif = snn.RLeaky(beta=math.exp(-PERIOD / 20e-3), linear_features=hidden)
    fc_out = torch.nn.Linear(hidden, 10)
    params = list(fc_in.parameters()) + list(lif.parameters()) + list(fc_out.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    x = torch.rand(steps, batch, n_in)
    y = torch.randint(0, 10, (batch,))

    def step():
        spk, mem = lif.init_rleaky()
        count = torch.zeros(batch, hidden)
        for t in range(steps):
            spk, mem = lif(fc_in(x[t]), spk, mem)
            count = count + spk
        loss = torch.nn.functional.cross_entropy(fc_out(count), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    return batch * iters / (time.perf_counter() - t0)


def simulation_part(n, seconds, skip):
    bins = int(round(seconds / PERIOD))
    print(f"(a) {n} neurons, 10 % connectivity, {seconds:g} s ({bins} bins, {2 * SUB} steps of {H * 1e6:.1f} us each); "
          f"{os.cpu_count()} CPU cores")
    rows = {"ionspike": run_ionspike(n, bins)}
    print(f"  ionspike          total {rows['ionspike']['wall_s']:8.2f} s (warm {rows['ionspike']['warm_s']:.2f} s), "
          f"{rows['ionspike']['spikes']} spikes", flush=True)
    peers = [("numpy", lambda: run_numpy(n, bins)), ("brian2_cython", lambda: run_brian2(n, bins, "cython")),
             ("brian2_cpp", lambda: run_brian2(n, bins, "cpp_standalone"))]
    for name, fn in peers:
        if name in skip:
            continue
        try:
            rows[name] = fn()
        except ImportError as exc:
            print(f"  {name:16s}  not installed ({exc}); pip install -r benchmarks/requirements-network.txt")
            continue
        r = rows[name]
        print(f"  {name:16s}  total {r['wall_s']:8.2f} s, {r['spikes']} spikes; "
              f"ionspike is {r['wall_s'] / rows['ionspike']['wall_s']:.1f}x faster (total), "
              f"{r['wall_s'] / rows['ionspike']['warm_s']:.1f}x (warm)", flush=True)
    if "brian2_cpp" in rows:
        ok = rows["ionspike"]["wall_s"] < rows["brian2_cpp"]["wall_s"]
        print(f"  target: faster than Brian2 cpp_standalone's total wall time: {'MET' if ok else 'MISSED'}")
    return {"neurons": n, "seconds": seconds, "rows": rows}


def training_part(iters, skip):
    print(f"(b) training: {SIZES['hidden']} hidden, {SIZES['n_in']} inputs, {SIZES['steps']} steps, batch "
          f"{SIZES['batch']}, BPTT + Adam, spike-count readout ({iters} timed iterations)")
    sps = {}
    for kind in ("1m1t1r", "1m1t1r_deterministic", "lif"):
        sps[f"ionspike_{kind}"] = train_ionspike(kind, iters=iters, **SIZES)
        print(f"  ionspike {kind:21s} {sps[f'ionspike_{kind}']:8.1f} samples/s", flush=True)
    if "snntorch" not in skip:
        try:
            sps["snntorch_rleaky"] = train_snntorch(iters=iters, **SIZES)
            print(f"  snnTorch RLeaky                {sps['snntorch_rleaky']:8.1f} samples/s")
        except ImportError as exc:
            print(f"  snntorch          not installed ({exc}); pip install -r benchmarks/requirements-network.txt")
    device, lif, ref = sps["ionspike_1m1t1r"], sps["ionspike_lif"], sps.get("snntorch_rleaky")
    if ref:
        for k in ("ionspike_1m1t1r", "ionspike_1m1t1r_deterministic", "ionspike_lif"):
            print(f"  {k} / snnTorch RLeaky = {sps[k] / ref:.2f}x")
        print(f"  target: 1M1T1R >= 1x snnTorch RLeaky: {'MET' if device >= ref else 'MISSED'} ({device / ref:.2f}x)")
    print(f"  stretch: 1M1T1R >= 0.5x ionspike LIF: {'MET' if device >= 0.5 * lif else 'MISSED'} ({device / lif:.2f}x)")
    return {**sps, "sizes": dict(SIZES), "units": "samples/s", "timed_iterations": iters,
            "cpu_count": os.cpu_count()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=("all", "simulation", "training"), default="all")
    ap.add_argument("--json", default=None, help="write the measured numbers to this JSON file")
    ap.add_argument("--n", type=int, default=4000, help="neurons of part (a)")
    ap.add_argument("--seconds", type=float, default=1.0, help="simulated activity of part (a), s")
    ap.add_argument("--quick", action="store_true", help="N = 1000, 0.2 s, 2 training iterations")
    ap.add_argument("--skip", default="", help="comma-separated: numpy,brian2_cython,brian2_cpp,snntorch")
    args = ap.parse_args(argv)
    n, seconds, iters = (1000, 0.2, 2) if args.quick else (args.n, args.seconds, 5)
    skip = set(filter(None, args.skip.split(",")))
    out = {}
    if args.part in ("all", "simulation"):
        out["simulation"] = simulation_part(n, seconds, skip)
    if args.part in ("all", "training"):
        out.update(training_part(iters, skip))
    if args.json:
        tmp = f"{args.json}.tmp"
        with open(tmp, "w") as f:
            json.dump(out, f, indent=2)
        os.replace(tmp, args.json)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
