"""Trained networks to and from NIR (the Neuromorphic Intermediate Representation, package ``nir``).

Export (:func:`to_graph`) of a ``train`` output folder; nodes and edges::

    input -> w_in (Affine: input crossbar and bias) -> hidden (LIF) -> w_out (Linear) -> readout (LI) -> output
                                                  hidden -> w_rec (Linear) -> hidden   (the recurrence, one bin late)

NIR's weights are ``(out, in)`` (ionspike's ``(in, out)`` transposed). NIR's neurons are continuous
in time; ionspike steps them on bins of ``T = bin.period`` s with the input held over a bin, and
the graph's metadata says so (``dt``, ``input_hold``: a task step lasts ``bins_per_step`` bins). With
the input held, the exact per-bin update of ``tau dv/dt = (v_leak - v) + r I`` is
``v <- d v + (1 - d)(v_leak + r I)``, ``d = e^{-T/tau}``; so ionspike's LIF ``v <- d v + I`` is NIR's
LIF with ``r = 1/(1 - d)``, and the leaky-integrator readout ``u <- k u + W s`` is NIR's LI with
``r = 1/(1 - k)``.

* **LIF** exports exactly, except one rule NIR's LIF has no field for: ionspike resets by
  subtraction (``v <- v - 1``); the hidden node's metadata says ``reset = "subtract"`` (NIR's own
  rule is ``v <- v_reset``; a reader that ignores the metadata resets to 0). A spike is ``v >=
  threshold`` (NIR writes ``>``; they differ only on exact equality).
* **ALIF** exports as its LIF part: NIR has no adaptive threshold, so the adaptation (``beta``,
  ``tau_adapt``) is dropped, with a warning and the accuracy the LIF part reaches.
* **1M1T1R** has no NIR node. Its population exports as the nearest NIR ``LIF`` (reset to
  ``v_reset``): ``tau``, ``r``, ``v_leak`` and ``v_reset`` (threshold 1) chosen on a grid to match
  the deterministic device's response to a constant drive over the task's length (spike count
  and first-spike bin at 33 drives from -4 to 4; the device sees a drive through its cell's
  input map, :meth:`ionspike.network.cells.DeviceCell.amplitude`). The device's parameters travel in the
  node's metadata. The export is lossy and says by how much: the fitted curve's error and, on
  the task's test set, the spike counts and the accuracy of the approximating network against
  the device network (:func:`to_graph`'s report, also in the graph's metadata).
* The logits: the readout's ``max`` over time plus the output bias (``li``), its mean (``li-mean``),
  or the spike counts through ``w_out`` plus the bias (``count``); NIR has no node for a max over
  time or a final bias, so the graph's metadata carries ``logits`` and ``b_out``.

Import (:func:`from_graph`) reads such a graph back: an LIF population that is ionspike's LIF
(one ``tau``, ``r = 1/(1 - d)``, ``v_leak = 0``, threshold 1, subtraction) becomes
:class:`~ionspike.network.cells.LIFCell`, any other LIF a
:class:`~ionspike.network.cells.NIRLIFCell`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ionspike import __version__
from ionspike.errors import ParameterError
from ionspike.io import atomic_write
from ionspike.network import cells
from ionspike.network.neuron import Bin
from ionspike.network.rsnn import RSNN, evaluate_batch

FORMAT = "ionspike-nir-1"
FIT_DRIVES = np.linspace(-4.0, 4.0, 33)
NODE_ORDER = ("input", "w_in", "hidden", "w_rec", "w_out", "readout", "output")


def _nir():
    try:
        import nir
    except ImportError as exc:  # a declared dependency; say so if it is missing
        raise ParameterError("the 'nir' package is needed for NIR export/import: pip install nir") from exc
    return nir


# ------------------------------------------------------------------------- the device's nearest LIF
def device_response(cell: cells.DeviceCell, bins: int, drives=FIT_DRIVES) -> tuple[np.ndarray, np.ndarray]:
    """Spike count and first-spike bin (``bins`` if none) of the deterministic device under each
    constant drive for ``bins`` bins."""
    from ionspike.network.neuron import run

    amps = cell.amplitude(jnp.asarray(drives, jnp.float32))
    spikes, _ = run(jnp.broadcast_to(amps, (bins, len(drives))), cells.float32_params(cell.params), cell.bin)
    spikes = np.asarray(spikes)
    first = np.where(spikes.any(0), spikes.argmax(0), bins)
    return spikes.sum(0), first


@jax.jit
def _lif_grid(decay, gain, v_leak, v_reset, drives, bins_like):
    """Counts and first-spike bins of NIR LIFs (parameters (K,)) under constant drives (D,)."""
    bins = bins_like.shape[0]
    v0 = jnp.zeros((decay.shape[0], drives.shape[0]), jnp.float32)
    inp = (1.0 - decay)[:, None] * v_leak[:, None] + gain[:, None] * drives[None, :]

    def body(c, t):
        v, count, first = c
        v = decay[:, None] * v + inp
        s = v >= 1.0
        first = jnp.where(s & (first == bins), t, first)
        return (jnp.where(s, v_reset[:, None], v), count + s, first), None

    init = (v0, jnp.zeros(v0.shape, jnp.int32), jnp.full(v0.shape, bins, jnp.int32))
    (_, count, first), _ = jax.lax.scan(body, init, jnp.arange(bins))
    return count, first


def fit_lif(cell: cells.DeviceCell, bins: int, drives=FIT_DRIVES) -> dict:
    """The NIR LIF (threshold 1, reset to ``v_reset``) nearest to the device's response: a grid over
    ``tau`` (2 ms-1 s, log), the per-bin input gain ``(1 - d) r`` (1e-3-10, log), ``v_leak`` (-4..4)
    and ``v_reset`` (-2..0.95); the score is the mean squared difference of spike count and first-spike
    bin over the drives, in units of the task's length."""
    dev_count, dev_first = device_response(cell, bins, drives)
    T = cell.bin.period
    taus = np.geomspace(2e-3, 1.0, 16)
    gains = np.geomspace(1e-3, 10.0, 25)
    leaks = np.linspace(-4.0, 4.0, 17)
    resets = np.linspace(-2.0, 0.95, 12)
    grid = np.stack(np.meshgrid(taus, gains, leaks, resets, indexing="ij"), -1).reshape(-1, 4)
    decay = np.exp(-T / grid[:, 0])
    count, first = _lif_grid(jnp.asarray(decay, jnp.float32), jnp.asarray(grid[:, 1], jnp.float32),
                             jnp.asarray(grid[:, 2], jnp.float32), jnp.asarray(grid[:, 3], jnp.float32),
                             jnp.asarray(drives, jnp.float32), jnp.zeros(bins))
    count, first = np.asarray(count), np.asarray(first)
    score = (np.mean((count - dev_count) ** 2, 1) + np.mean((first - dev_first) ** 2, 1)) / bins ** 2
    k = int(np.argmin(score))
    tau, gain, v_leak, v_reset = (float(v) for v in grid[k])
    return {"tau": tau, "r": gain / (1.0 - decay[k]), "v_leak": v_leak, "v_threshold": 1.0, "v_reset": v_reset,
            "drives": [float(d) for d in drives], "device_count": dev_count.tolist(), "lif_count": count[k].tolist(),
            "device_first_bin": dev_first.tolist(), "lif_first_bin": first[k].tolist(),
            "count_rms_error": float(np.sqrt(np.mean((count[k] - dev_count) ** 2))),
            "first_bin_rms_error": float(np.sqrt(np.mean((first[k] - dev_first) ** 2))), "bins": bins}


# ----------------------------------------------------------------------------------- export
def _hidden_node(net: RSNN, task_bins: int):
    """(NIR node of the hidden population, what the export dropped or approximated, fit or None)."""
    nir = _nir()
    cell, h = net.cell, net.hidden
    T = cell.bin.period
    full = lambda v: np.full(h, float(v))  # noqa: E731
    if isinstance(cell, cells._LeakyIntegrateAndFire):
        d = math.exp(-T / cell.tau_mem)
        dropped = []
        if isinstance(cell, cells.ALIFCell):
            dropped.append(f"the ALIF threshold adaptation (beta = {cell.beta_adapt:g}, tau_adapt = "
                           f"{cell.tau_adapt:g} s): NIR has no adaptive-threshold neuron; exported as its LIF part")
        node = nir.LIF(tau=full(cell.tau_mem), r=full(1.0 / (1.0 - d)), v_leak=full(0.0), v_threshold=full(1.0),
                       v_reset=full(0.0), metadata={"reset": "subtract", "ionspike_cell": cell.name,
                                                    "spike": "v >= v_threshold, one per bin"})
        return node, dropped, None
    if isinstance(cell, cells.DeviceCell):
        fit = fit_lif(cell, task_bins)
        node = nir.LIF(tau=full(fit["tau"]), r=full(fit["r"]), v_leak=full(fit["v_leak"]),
                       v_threshold=full(fit["v_threshold"]), v_reset=full(fit["v_reset"]),
                       metadata={"reset": "to", "ionspike_cell": cell.name, "approximates": "1M1T1R neuron",
                                 "device": json.dumps(cell.describe()), "fit": json.dumps(fit)})
        note = (f"the 1M1T1R population is exported as its nearest NIR LIF (tau = {fit['tau'] * 1e3:.3g} ms, "
                f"r = {fit['r']:.3g}, v_leak = {fit['v_leak']:.3g}, v_reset = {fit['v_reset']:.3g}; spike-count rms "
                f"error {fit['count_rms_error']:.2f} over {task_bins} bins at constant drive)")
        return node, [note], fit
    raise ParameterError(f"cell {cell.name!r} has no NIR export")


def _graph(net: RSNN, weights: dict, meta: dict, hidden_node):
    nir = _nir()
    w = {k: np.asarray(v, np.float32) for k, v in weights.items()}
    T = net.cell.bin.period
    nodes = {"input": nir.Input(input_type=np.array([net.n_in])),
             "w_in": nir.Affine(weight=w["w_in"].T.copy(), bias=w["b"].copy()),
             "hidden": hidden_node,
             "w_rec": nir.Linear(weight=w["w_rec"].T.copy()),
             "w_out": nir.Linear(weight=w["w_out"].T.copy())}
    edges = [("input", "w_in"), ("w_in", "hidden"), ("hidden", "w_rec"), ("w_rec", "hidden"), ("hidden", "w_out")]
    if net.readout in ("li", "li-mean"):
        k = math.exp(-T / net.tau_out)
        nodes["readout"] = nir.LI(tau=np.full(net.n_out, net.tau_out), r=np.full(net.n_out, 1.0 / (1.0 - k)),
                                  v_leak=np.zeros(net.n_out))
        edges += [("w_out", "readout"), ("readout", "output")]
        logits = ("max over time of the readout's v, plus b_out" if net.readout == "li"
                  else "mean over time of the readout's v, plus b_out")
    else:
        edges += [("w_out", "output")]
        logits = "sum over time of w_out's output (the hidden spike counts through w_out), plus b_out"
    nodes["output"] = nir.Output(output_type=np.array([net.n_out]))
    metadata = {"format": FORMAT, "ionspike_version": __version__, "dt": T, "bins_per_step": net.bins_per_step,
                "input_hold": f"each input step is held for bins_per_step = {net.bins_per_step} bins of dt",
                "recurrence": "w_rec carries the previous bin's spikes", "readout": net.readout, "logits": logits,
                "b_out": w["b_out"].copy(), **meta}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def to_graph(folder: str | Path):
    """The NIR graph of a trained model folder (``ionspike train --out``) and a report:
    ``{"nodes": {name: (type, shape)}, "exact": bool, "dropped": [...], "device_test_accuracy",
    "nir_test_accuracy", "spikes_per_sample": {"model", "nir"}, "count_rel_error", "fit"}``; the
    accuracies and spike counts are measured on the task's test set (the approximation's error, for
    a 1M1T1R network; for an exact export the two are equal)."""
    from ionspike.network import train as T

    config, net, weights, task = T.load_model(folder, option="RUN_DIR")
    bins = task.x_test.shape[1] * net.bins_per_step
    hidden, dropped, fit = _hidden_node(net, bins)
    meta = {"ionspike_config": json.dumps(config.to_dict()), "exact": not dropped}
    graph = _graph(net, weights, meta, hidden)
    # measure what the graph computes against the model, on the test set
    model_acc, model_spikes = _accuracy(net, weights, config, task)
    nir_net, nir_weights, _ = from_graph(graph)
    nir_acc, nir_spikes = _accuracy(nir_net, nir_weights, config, task)
    rel = float(np.mean(np.abs(nir_spikes - model_spikes)) / max(float(np.mean(model_spikes)), 1e-12))
    report = {"nodes": describe(graph), "exact": not dropped, "dropped": dropped,
              "model_test_accuracy": model_acc, "nir_test_accuracy": nir_acc,
              "spikes_per_sample": {"model": float(np.mean(model_spikes)), "nir": float(np.mean(nir_spikes))},
              "count_rel_error": rel, "fit": fit}
    graph.metadata["report"] = json.dumps(report)
    return graph, report


def _accuracy(net: RSNN, weights, config, task) -> tuple[float, np.ndarray]:
    """Test accuracy and hidden spikes per test sample, with training's device draw and evaluation noise."""
    from ionspike.network import train as T

    _, _, (x, y) = T.split(config, task)
    root = jax.random.key(config.seed)
    instance = net.draws(jax.random.fold_in(root, 1))
    key = jax.random.fold_in(root, 3)
    correct, spikes = 0, []
    for j in range(0, len(y), T.EVAL_CHUNK):
        c, s = evaluate_batch(weights, instance, x[j:j + T.EVAL_CHUNK], y[j:j + T.EVAL_CHUNK],
                              jax.random.fold_in(key, j), net=net)
        correct += int(c)
        spikes.append(np.asarray(s))
    return correct / len(y), np.concatenate(spikes)


def describe(graph) -> dict:
    """Node name -> ``"Type(shape)"`` of a graph (what a user checks after ``nir.read``)."""
    out = {}
    for name, node in graph.nodes.items():
        kind = type(node).__name__
        if hasattr(node, "weight"):
            shape = list(np.shape(node.weight))
        elif hasattr(node, "tau"):
            shape = list(np.shape(node.tau))
        elif kind == "Input":
            shape = [int(v) for v in np.ravel(node.input_type["input"])]
        elif kind == "Output":
            shape = [int(v) for v in np.ravel(node.output_type["output"])]
        else:
            shape = []
        out[name] = f"{kind}{tuple(shape)}"
    return out


# ----------------------------------------------------------------------------------- import
def _uniform(a, name) -> float:
    a = np.asarray(a, np.float64).ravel()
    if not np.all(a == a[0]):
        raise ParameterError(f"{name} differs between neurons: ionspike's LIF takes one value")
    return float(a[0])


def from_graph(graph):
    """``(net, weights, config or None)`` of an NIR graph of the structure :func:`to_graph` writes.
    Raises :class:`ParameterError` naming what does not fit."""
    nir = _nir()
    nodes = graph.nodes
    missing = [n for n in ("input", "w_in", "hidden", "w_rec", "w_out", "output") if n not in nodes]
    if missing:
        raise ParameterError(f"the NIR graph lacks the node(s) {missing}: ionspike reads recurrent networks of the "
                             f"structure it writes ({' -> '.join(NODE_ORDER)})")
    hidden = nodes["hidden"]
    if type(hidden) is not nir.LIF:
        raise ParameterError(f"the hidden node is a {type(hidden).__name__}: allowed LIF")
    meta = dict(graph.metadata)
    T = float(meta.get("dt", 0) or 0)
    if not T > 0:
        raise ParameterError(f"the graph's metadata dt = {meta.get('dt')!r}: allowed a time step > 0 s")
    spec = Bin(width=T / 2, period=T)
    reset = str(hidden.metadata.get("reset", "to"))
    tau = np.asarray(hidden.tau, np.float64).ravel()
    r = np.asarray(hidden.r, np.float64).ravel()
    v_leak = np.asarray(hidden.v_leak, np.float64).ravel()
    v_th = np.asarray(hidden.v_threshold, np.float64).ravel()
    v_reset = np.zeros_like(tau) if hidden.v_reset is None else np.asarray(hidden.v_reset, np.float64).ravel()
    d = np.exp(-T / tau)
    if (reset == "subtract" and np.all(tau == tau[0]) and np.all(v_leak == 0) and np.all(v_th == 1)
            and np.all(np.abs((1.0 - d) * r - 1.0) <= 1e-9)):
        cell: cells.Cell = cells.LIFCell(spec, tau_mem=float(tau[0]))
    else:
        cell = cells.NIRLIFCell(spec, tuple(tau), tuple(r), tuple(v_leak), tuple(v_th), tuple(v_reset), reset=reset)
    w_in = np.asarray(nodes["w_in"].weight, np.float32)
    bias = np.asarray(getattr(nodes["w_in"], "bias", np.zeros(w_in.shape[0])), np.float32)
    w_rec = np.asarray(nodes["w_rec"].weight, np.float32)
    w_out = np.asarray(nodes["w_out"].weight, np.float32)
    readout = str(meta.get("readout", "li"))
    tau_out = 20e-3
    if "readout" in nodes:
        tau_out = _uniform(nodes["readout"].tau, "readout tau")
    b_out = np.asarray(meta.get("b_out", np.zeros(w_out.shape[0])), np.float32)
    net = RSNN(n_in=w_in.shape[1], cell=cell, hidden=w_in.shape[0], n_out=w_out.shape[0],
               bins_per_step=int(meta.get("bins_per_step", 1)), readout=readout, tau_out=tau_out)
    weights = {"w_in": jnp.asarray(w_in.T), "w_rec": jnp.asarray(w_rec.T), "b": jnp.asarray(bias),
               "w_out": jnp.asarray(w_out.T), "b_out": jnp.asarray(b_out)}
    config = None
    if "ionspike_config" in meta:
        from ionspike.network.train import TrainConfig

        config = TrainConfig.from_dict(json.loads(str(meta["ionspike_config"])))
    return net, weights, config


def evaluate_graph(graph) -> dict:
    """Test accuracy of an NIR graph read back into ionspike, on the task its metadata names."""
    from ionspike.network import train as T

    net, weights, config = from_graph(graph)
    if config is None:
        raise ParameterError("the NIR graph names no ionspike task (metadata 'ionspike_config'): nothing to evaluate on")
    task = T.load_task(config)
    acc, spikes = _accuracy(net, weights, config, task)
    stated = json.loads(str(graph.metadata["report"])) if "report" in graph.metadata else {}
    return {"test_accuracy": acc, "spikes_per_sample": float(np.mean(spikes)), "cell": net.cell.describe(),
            "stated_test_accuracy": stated.get("nir_test_accuracy"), "model_test_accuracy": stated.get("model_test_accuracy"),
            "task": config.task, "nodes": describe(graph)}


def write(graph, path: Path) -> None:
    """Write ``graph`` to ``path`` atomically (NIR's HDF5 file)."""
    nir = _nir()
    atomic_write(Path(path), lambda tmp: nir.write(str(tmp), graph))


def read(path: str | Path):
    """The graph in the NIR file at ``path``; a clear error when it is not one."""
    nir = _nir()
    p = Path(path)
    if not p.is_file():
        raise ParameterError(f"NIR file {str(p)!r} does not exist or is not a file")
    try:
        return nir.read(str(p))
    except Exception as exc:  # noqa: BLE001 -- any parse failure means: not an NIR file
        raise ParameterError(f"{str(p)!r} is not a readable NIR file: {exc}") from None
