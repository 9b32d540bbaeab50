"""Training an RSNN on a task: configuration, minibatch BPTT with optax, per-epoch checkpoints
that resume to identical weights, evaluation.

Everything random is derived from ``TrainConfig.seed``: the weights (``fold_in(seed, 0)``),
the network's device realisation (``fold_in(seed, 1)``), the minibatch order of epoch ``e``
(NumPy ``default_rng([seed, e])``) and the noise of training step ``i`` of epoch ``e``
(``fold_in(fold_in(seed, 2), e * 100000 + i)``); evaluation noise is ``fold_in(seed, 3)``.
So a run resumed from the checkpoint of epoch ``e`` repeats exactly what the uninterrupted
run does after epoch ``e``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ionspike import presets
from ionspike.errors import CheckpointError, ParameterError
from ionspike.io import atomic_write, prepare_out_dir
from ionspike.network import cells, tasks, variants
from ionspike.network.neuron import Bin
from ionspike.network.rsnn import RSNN, evaluate_batch, optimizer, train_step

NEURONS = ("1m1t1r", "lif", "alif")
CHECKPOINT = "checkpoint.npz"
EVAL_CHUNK = 250
# bins (of 1 ms on / 1 ms off) per input step: enough device time per sequence for the paper
# device (first spike ~45 bins at 0.8 V) to integrate and fire -- MNIST-1D 40 steps -> 80 bins
# (160 ms), digits 8 rows -> 64 bins (128 ms), working memory 110 steps -> 220 bins (440 ms)
# peak learning rate per neuron model: each model's best of {3e-3, 1e-2, 3e-2} on MNIST-1D
# (128 hidden, 15 epochs; test accuracy LIF 62.8 / 31.4 / 12.3 %, ALIF 63.3 / 54.2 / -, 1M1T1R
# best at 3e-2); everything else in the recipe is identical
DEFAULT_LR = {"1m1t1r": 3e-2, "lif": 3e-3, "alif": 3e-3}
TASK_BINS_PER_STEP = {"mnist1d": 2, "digits": 8, "working_memory": 2}


@dataclass(frozen=True)
class TrainConfig:
    """What to train and how. ``n_train``/``n_test``: use only the first samples (None: all).
    ``substeps_on``/``substeps_off``: the 1M1T1R cell's midpoint sub-steps per bin phase."""

    task: str = "mnist1d"
    neuron: str = "1m1t1r"
    variant: str = "full"
    preset: str = "paper"
    hidden: int = 128
    epochs: int = 15
    batch: int = 64
    lr: float | None = None             # None: DEFAULT_LR of the neuron
    seed: int = 0
    bins_per_step: int | None = None   # None: the task's default (TASK_BINS_PER_STEP)
    n_train: int | None = None
    n_test: int | None = None
    substeps_on: int = 16
    substeps_off: int = 8
    task_options: tuple = ()     # (name, value) pairs passed to the task generator

    def __post_init__(self):
        tasks.check(self.task)
        if self.neuron not in NEURONS:
            raise ParameterError(f"neuron = {self.neuron!r} is unknown: allowed {', '.join(NEURONS)}")
        variants.check(self.variant)
        if self.variant != "full" and self.neuron != "1m1t1r":
            raise ParameterError(f"variant = {self.variant!r} applies to the 1m1t1r neuron only (neuron = {self.neuron!r})")
        if self.lr is None and self.neuron in DEFAULT_LR:
            object.__setattr__(self, "lr", DEFAULT_LR[self.neuron])
        if self.bins_per_step is None:
            object.__setattr__(self, "bins_per_step", TASK_BINS_PER_STEP[tasks.check(self.task)])
        for name in ("hidden", "epochs", "batch", "bins_per_step", "substeps_on", "substeps_off"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ParameterError(f"{name} = {v!r} is out of range: allowed integers >= 1")
        for name in ("n_train", "n_test"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and v >= 1):
                raise ParameterError(f"{name} = {v!r} is out of range: allowed integers >= 1 or None")
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < 10):
            raise ParameterError(f"lr = {self.lr!r} is out of range: allowed (0, 10)")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ParameterError(f"seed = {self.seed!r} is out of range: allowed integers >= 0")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["task_options"] = [list(kv) for kv in self.task_options]
        return d


def load_task(config: TrainConfig) -> tasks.Task:
    return tasks.load(config.task, **dict(config.task_options))


def build(config: TrainConfig, task: tasks.Task) -> tuple[RSNN, dict]:
    """The network of ``config`` and a description of its neuron (variant note, parameters)."""
    spec = Bin(substeps_on=config.substeps_on, substeps_off=config.substeps_off)
    info = {"neuron": config.neuron, "variant": config.variant}
    if config.neuron == "1m1t1r":
        spec = device_bin(config)
        v = variants.make(config.variant, presets.params(config.preset), spec)
        cell = cells.DeviceCell(v.params, spec, stochastic=v.stochastic)
        info.update(note=v.note, mu_factor=v.mu_factor, preset=config.preset)
    elif config.neuron == "lif":
        cell = cells.LIFCell(spec)
    else:
        cell = cells.ALIFCell(spec)
    net = RSNN(n_in=task.channels, cell=cell, hidden=config.hidden, n_out=task.n_classes,
               bins_per_step=config.bins_per_step)
    return net, info


def device_bin(config: TrainConfig) -> Bin:
    """The bin of the 1M1T1R cell: the preset's default pulse (paper: 1 ms on / 1 ms off; 3nm:
    10 ns / 20 ns, its dynamics being 1e5 times faster), so the same network fits any preset."""
    from ionspike.stimulus import PulseTrain, from_defaults

    stim = from_defaults(presets.load(config.preset).defaults, f"preset {config.preset!r}: defaults")
    if not isinstance(stim, PulseTrain):
        return Bin(substeps_on=config.substeps_on, substeps_off=config.substeps_off)
    return Bin(width=float(stim.width), period=float(stim.period), substeps_on=config.substeps_on,
               substeps_off=config.substeps_off)


def _subset(x, y, n):
    return (x, y) if n is None else (x[:n], y[:n])


def _digest(arrays: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        h.update(k.encode())
        h.update(np.ascontiguousarray(arrays[k]).tobytes())
    return h.hexdigest()


def save_checkpoint(path: Path, config: TrainConfig, epoch: int, weights, opt_state, history: list) -> None:
    """Weights, optimiser state, the epoch and the history, in one atomically written .npz."""
    leaves = jax.tree.leaves((weights, opt_state))
    arrays = {f"leaf_{i:04d}": np.asarray(v) for i, v in enumerate(leaves)}
    meta = {"format": "ionspike-checkpoint-1", "config": config.to_dict(), "epoch": epoch, "history": history,
            "digest": _digest(arrays)}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)


def load_checkpoint(path: Path, config: TrainConfig, template) -> tuple[int, object, list]:
    """``(epoch, (weights, opt_state), history)`` from ``path``; raises :class:`CheckpointError`
    if it is unreadable, altered, or was written by a different configuration."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except Exception as exc:  # noqa: BLE001 -- any failure to parse is a corrupt file
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt or not an ionspike checkpoint: {exc}") from None
    if meta.get("format") != "ionspike-checkpoint-1":
        raise CheckpointError(f"checkpoint {str(path)!r} has format {meta.get('format')!r}: expected 'ionspike-checkpoint-1'")
    if _digest(arrays) != meta.get("digest"):
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt: its arrays do not match their recorded digest")
    saved = meta["config"]
    for k, v in config.to_dict().items():
        if saved.get(k) != v:
            raise CheckpointError(f"checkpoint {str(path)!r} was written with {k} = {saved.get(k)!r}, "
                                  f"this run has {k} = {v!r}: use another --out or the same settings")
    leaves, treedef = jax.tree.flatten(template)
    if len(arrays) != len(leaves):
        raise CheckpointError(f"checkpoint {str(path)!r} holds {len(arrays)} arrays, the network needs {len(leaves)}")
    loaded = []
    for i, ref in enumerate(leaves):
        a = arrays[f"leaf_{i:04d}"]
        if a.shape != np.shape(ref):
            raise CheckpointError(f"checkpoint {str(path)!r}: array {i} has shape {a.shape}, expected {np.shape(ref)}")
        loaded.append(jnp.asarray(a, dtype=jnp.asarray(ref).dtype))
    return int(meta["epoch"]), jax.tree.unflatten(treedef, loaded), list(meta["history"])


def evaluate(net: RSNN, weights, instance, x, y, key) -> dict:
    """Test accuracy and spikes per sample (hidden layer), in chunks."""
    correct, spikes = 0, []
    for j in range(0, len(y), EVAL_CHUNK):
        c, s = evaluate_batch(weights, instance, x[j:j + EVAL_CHUNK], y[j:j + EVAL_CHUNK], jax.random.fold_in(key, j),
                              net=net)
        correct += int(c)
        spikes.append(np.asarray(s))
    spikes = np.concatenate(spikes)
    bins = x.shape[1] * net.bins_per_step
    return {"accuracy": correct / len(y), "spikes_per_sample": float(spikes.mean()),
            "firing_rate_per_bin": float(spikes.mean() / (bins * net.hidden)), "spikes_per_sample_all": spikes}


def train(config: TrainConfig, out: str | Path | None = None, *, progress: Callable[[int, int, dict], None] | None = None,
          stop_after: int | None = None, task: tasks.Task | None = None) -> dict:
    """Train ``config``; with ``out``, checkpoint every epoch to ``out/checkpoint.npz`` and resume
    from it. ``progress(epoch, epochs, row)`` is called after each epoch. ``stop_after``: end after
    that many epochs in total (an interruption, for tests). Returns the result (history, test
    metrics, weights, network)."""
    task = task or load_task(config)
    x_tr, y_tr = _subset(task.x_train, task.y_train, config.n_train)
    x_te, y_te = _subset(task.x_test, task.y_test, config.n_test)
    if config.batch > len(y_tr):
        raise ParameterError(f"batch = {config.batch} is out of range: allowed 1..{len(y_tr)} (training samples)")
    net, info = build(config, task)
    root = jax.random.key(config.seed)
    weights = net.init(jax.random.fold_in(root, 0))
    instance = net.draws(jax.random.fold_in(root, 1))
    steps_per_epoch = len(y_tr) // config.batch
    opt_spec = (float(config.lr), config.epochs * steps_per_epoch)
    opt_state = optimizer(*opt_spec).init(weights)
    history: list = []
    start = 0
    ckpt = None if out is None else prepare_out_dir(out) / CHECKPOINT
    if ckpt is not None and ckpt.exists():
        start, (weights, opt_state), history = load_checkpoint(ckpt, config, (weights, opt_state))
    noise_root = jax.random.fold_in(root, 2)
    eval_key = jax.random.fold_in(root, 3)
    last = config.epochs if stop_after is None else min(config.epochs, stop_after)
    for epoch in range(start, last):
        t0 = time.perf_counter()
        order = np.random.default_rng([config.seed, epoch]).permutation(len(y_tr))
        losses, accs = [], []
        for i in range(steps_per_epoch):
            idx = order[i * config.batch:(i + 1) * config.batch]
            key = jax.random.fold_in(noise_root, epoch * 100000 + i)
            weights, opt_state, loss, acc = train_step(weights, opt_state, instance, x_tr[idx], y_tr[idx], key,
                                                       net=net, opt_spec=opt_spec)
            losses.append(float(loss))
            accs.append(float(acc))
        if not np.all(np.isfinite(losses)):
            raise FloatingPointError(f"training diverged in epoch {epoch + 1}: non-finite loss")
        test = evaluate(net, weights, instance, x_te, y_te, eval_key)
        row = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "train_accuracy": float(np.mean(accs)),
               "test_accuracy": test["accuracy"], "spikes_per_sample": test["spikes_per_sample"],
               "firing_rate_per_bin": test["firing_rate_per_bin"], "seconds": time.perf_counter() - t0}
        history.append(row)
        if ckpt is not None:
            save_checkpoint(ckpt, config, epoch + 1, weights, opt_state, history)
        if progress is not None:
            progress(epoch + 1, config.epochs, row)
    final = history[-1] if history else {}
    return {"config": config.to_dict(), "neuron": info, "history": history, "epochs_done": len(history),
            "test_accuracy": final.get("test_accuracy"), "spikes_per_sample": final.get("spikes_per_sample"),
            "firing_rate_per_bin": final.get("firing_rate_per_bin"), "weights": weights, "instance": instance,
            "net": net, "task": task}
