"""Training an RSNN on a task: configuration, minibatch BPTT with optax, a validation split with
best-epoch selection (and optional early stopping), per-epoch checkpoints that resume to identical
weights, and one evaluation on the test set at the end.

Everything random is derived from ``TrainConfig.seed``: the weights (``fold_in(seed, 0)``), the
network's device realisation (``fold_in(seed, 1)``), the minibatch order of epoch ``e`` (NumPy
``default_rng([seed, e])``), the noise of training step ``i`` of epoch ``e``
(``fold_in(fold_in(seed, 2), e * 100000 + i)``), the evaluation noise (``fold_in(seed, 3)``) and,
for variability-aware training, the device draw of each training step (``fold_in(fold_in(seed, 4),
e * 100000 + i)``). The validation split is a fixed, seed-independent part of the training set, so
every model of a study is selected on the same samples. A run resumed from the checkpoint of epoch
``e`` repeats exactly what the uninterrupted run does after epoch ``e``.

**Task time to device time** (:data:`TASK_TIMING`): one input step of a task is ``bins_per_step``
device bins (one pulse period each, 1 ms on / 1 ms off for the paper device). The choice is per
task and stated, so that no neuron model is starved of time: the paper device needs tens of
milliseconds of drive to fire (first spike after ~90 ms at 0.8 V, ~12 ms at 1.2 V), so a cue must
last tens of bins. The leaky-integrator readout's time constant is the task's too
(``TaskTiming.tau_out``, every neuron model alike): 20 ms, except 100 ms for digits, whose evidence
arrives row by row over the whole 128 ms sequence (measured: LIF 80.5 % -> 85.5 % test at 30 epochs,
87.2 % -> 93.0 % at 150; README "Networks").
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zipfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ionspike import map_limit, presets
from ionspike.errors import CheckpointError, ParameterError
from ionspike.io import atomic_write, prepare_out_dir
from ionspike.network import cells, energy, tasks, variants
from ionspike.network.neuron import Bin
from ionspike.network.rsnn import MAX_SKIPPED_IN_A_ROW, READOUTS, RSNN, evaluate_batch, optimizer, train_step

NEURONS = ("1m1t1r", "lif", "alif")
CHECKPOINT = "checkpoint.npz"
MODEL = "model.npz"
EVAL_CHUNK = 250
VAL_SPLIT_SEED = 20261202   # the fixed validation split (independent of the model's seed)
# per neuron model, its best (peak learning rate, upper-rate penalty weight) of the grid
# {1e-3, 3e-3, 1e-2} x {0, 10} on MNIST-1D (128 hidden, li readout, 30 epochs, seed 0, validation
# accuracy; see README "Networks"); everything else in the recipe is identical. The 1m1t1r entry
# was then moved from (1e-2, 10) to (5e-3, 30): over 40 epochs (deterministic variant) (1e-2, 10)
# diverges on seed 1 (the hidden rate runs away; 41.8 % test) where (5e-3, 30) is stable (55.7 %),
# and on seed 0 gives 56.4 % against 61.3 % (docs/model.md §7.4)
DEFAULT_LR = {"1m1t1r": 5e-3, "lif": 1e-3, "alif": 1e-3}
DEFAULT_RATE_WEIGHT = {"1m1t1r": 30.0, "lif": 0.0, "alif": 0.0}
# V: the 1m1t1r spike surrogate's gate-readiness scale (neuron.Bin.ready_width; 0 = off). On by
# default since it was measured to help everywhere it was tried (docs/model.md §7.4): sequential
# digits 50.4 -> 78.6 % test, MNIST-1D seed 0 48.0 -> 51.9 % (deterministic 61.3 -> 62.0 %), two
# working-memory runs that diverged without it trained to 100 %; then, as the default, MNIST-1D
# full neuron 53.7 % over 3 seeds against 46.3 % without, and the working-memory ablation with no
# diverged run (6 of 27 without; README "Networks")
DEFAULT_READY_WIDTH = {"1m1t1r": 0.02, "lif": 0.0, "alif": 0.0}
LEGACY_INPUT_MAP = "sigmoid"   # the input map of models and checkpoints written before TrainConfig.input_map existed
LEGACY_TAU_OUT = 20e-3         # s: the readout time constant of files written before TrainConfig.tau_out existed
RATE_LIMIT = 0.05   # spikes per neuron and bin above which the upper-rate penalty acts
RATE_FLOOR = 0.02   # spikes per neuron and bin below which the lower-rate penalty acts
# per neuron model, the lower-rate penalty's weight (0: none; `train --floor-weight`). Off for every
# model: measured for the 1m1t1r cell (MNIST-1D, 128 hidden, 40 epochs; docs/model.md §7.4), weight
# 3000 revives the silent neurons (19 of 128 never fire without it, none with it) but does not buy
# accuracy: deterministic cell 59.2 -> 64.9 % test on seed 0, 62.3 -> 61.0 % on seed 1; full neuron
# 52.0 % over 3 seeds against 53.7 % without (that study stopped early, after 8 epochs without a
# better validation score; the floor runs trained all 40 epochs)
DEFAULT_FLOOR_WEIGHT = {"1m1t1r": 0.0, "lif": 0.0, "alif": 0.0}


@dataclass(frozen=True)
class TaskTiming:
    """How a task's steps map onto device bins, and the task options that go with it."""

    bins_per_step: int
    options: tuple = ()
    why: str = ""
    tau_out: float = LEGACY_TAU_OUT   # s: the leaky-integrator readout's time constant (rsnn.RSNN.tau_out)


TASK_TIMING = {
    "mnist1d": TaskTiming(2, (), "40 steps x 2 bins = 160 ms of device time per sequence"),
    "digits": TaskTiming(8, (), "8 rows x 8 bins = 128 ms per sequence (16 ms per row); the readout integrates "
                              "over 100 ms, as evidence comes row by row over the whole sequence", tau_out=0.1),
    "working_memory": TaskTiming(
        8, (("cue_steps", 5), ("delay_steps", 25), ("recall_steps", 5)),
        "cue 5 steps x 8 bins = 80 ms (the device fires within the cue at 1.2 V), delay 25 x 8 bins = 400 ms "
        "(twice the residue's 200 ms), recall 80 ms"),
}


@dataclass(frozen=True)
class TrainConfig:
    """What to train and how.

    ``n_train``/``n_test``: use only the first samples (None: all); ``val_fraction``: the share of
    the training set held out for model selection; ``patience``: stop after that many epochs
    without a better validation accuracy (None: train all ``epochs``; the best epoch is used either
    way); ``readout``: ``"li"``, ``"li-mean"`` or ``"count"`` (:mod:`ionspike.network.rsnn`);
    ``substeps_on``: the 1M1T1R cell's midpoint sub-steps per pulse; ``rate_weight``: the weight of
    the upper-rate penalty (spikes per bin above ``RATE_LIMIT``, :meth:`RSNN.loss`); ``floor_weight``:
    the weight of the lower-rate penalty (spikes per bin below ``RATE_FLOOR``); ``train_sigma_d2d``: the
    device-to-device spread of ln mu drawn afresh for every training batch (variability-aware
    training; None: the network keeps one device draw, the preset's spread).
    """

    task: str = "mnist1d"
    neuron: str = "1m1t1r"
    variant: str = "full"
    preset: str = "paper"
    hidden: int = 128
    epochs: int = 30
    batch: int = 64
    lr: float | None = None             # None: DEFAULT_LR of the neuron
    seed: int = 0
    bins_per_step: int | None = None    # None: the task's (TASK_TIMING)
    n_train: int | None = None
    n_test: int | None = None
    substeps_on: int = 4
    substeps_off: int = 4
    readout: str = "li"
    val_fraction: float = 0.1
    patience: int | None = None
    train_sigma_d2d: float | None = None
    rate_weight: float | None = None    # None: DEFAULT_RATE_WEIGHT of the neuron
    floor_weight: float | None = None   # None: DEFAULT_FLOOR_WEIGHT of the neuron (0: no lower-rate penalty)
    input_map: str = "sigmoid"          # the 1m1t1r cell's drive -> pulse amplitude map (cells.INPUT_MAPS)
    ready_width: float | None = None    # V: the 1m1t1r spike surrogate's gate-readiness scale (neuron.Bin);
                                        # 0: off; None: DEFAULT_READY_WIDTH of the neuron
    tau_out: float | None = None        # s: the li readouts' time constant (None: the task's, TASK_TIMING)
    task_options: tuple | None = None   # (name, value) pairs for the task generator (None: the task's)

    def __post_init__(self):
        tasks.check(self.task)
        if self.neuron not in NEURONS:
            raise ParameterError(f"neuron = {self.neuron!r} is unknown: allowed {', '.join(NEURONS)}")
        variants.check(self.variant)
        if self.variant != "full" and self.neuron != "1m1t1r":
            raise ParameterError(f"variant = {self.variant!r} applies to the 1m1t1r neuron only (neuron = {self.neuron!r})")
        if self.readout not in READOUTS:
            raise ParameterError(f"readout = {self.readout!r} is unknown: allowed {', '.join(READOUTS)}")
        if self.input_map not in cells.INPUT_MAPS:
            raise ParameterError(f"input_map = {self.input_map!r} is unknown: allowed {', '.join(cells.INPUT_MAPS)}")
        r = self.ready_width
        if r is not None and not (isinstance(r, (int, float)) and not isinstance(r, bool) and 0 <= r <= 10):
            raise ParameterError(f"ready_width = {r!r} V is out of range: allowed [0, 10] V (0: off) or None "
                                 "(the neuron's default)")
        if r and self.neuron != "1m1t1r":
            raise ParameterError(f"ready_width applies to the 1m1t1r neuron only (neuron = {self.neuron!r})")
        if r is None:
            object.__setattr__(self, "ready_width", DEFAULT_READY_WIDTH[self.neuron])
        timing = TASK_TIMING[tasks.check(self.task)]
        if self.lr is None:
            object.__setattr__(self, "lr", DEFAULT_LR[self.neuron])
        if self.rate_weight is None:
            object.__setattr__(self, "rate_weight", DEFAULT_RATE_WEIGHT[self.neuron])
        if not (isinstance(self.rate_weight, (int, float)) and not isinstance(self.rate_weight, bool)
                and 0 <= self.rate_weight < 1e6):
            raise ParameterError(f"rate_weight = {self.rate_weight!r} is out of range: allowed [0, 1e6)")
        if self.floor_weight is None:
            object.__setattr__(self, "floor_weight", DEFAULT_FLOOR_WEIGHT[self.neuron])
        if not (isinstance(self.floor_weight, (int, float)) and not isinstance(self.floor_weight, bool)
                and 0 <= self.floor_weight < 1e6):
            raise ParameterError(f"floor_weight = {self.floor_weight!r} is out of range: allowed [0, 1e6) or None "
                                 "(the neuron's default)")
        if self.bins_per_step is None:
            object.__setattr__(self, "bins_per_step", timing.bins_per_step)
        if self.task_options is None:
            object.__setattr__(self, "task_options", timing.options)
        if self.tau_out is None:
            object.__setattr__(self, "tau_out", timing.tau_out)
        t = self.tau_out
        if not (isinstance(t, (int, float)) and not isinstance(t, bool) and 1e-12 <= t <= 1e3):
            raise ParameterError(f"tau_out = {t!r} s is out of range: allowed [1e-12, 1e3] s or None (the task's)")
        for name in ("hidden", "epochs", "batch", "substeps_on", "substeps_off"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ParameterError(f"{name} = {v!r} is out of range: allowed integers >= 1")
        if not (isinstance(self.bins_per_step, int) and not isinstance(self.bins_per_step, bool)
                and self.bins_per_step >= 1):
            raise ParameterError(f"bins_per_step = {self.bins_per_step!r} is out of range: a task step lasts a whole "
                                 "number of device bins, allowed integers >= 1 (a step shorter than one bin cannot "
                                 "deliver a pulse)")
        for name in ("n_train", "n_test", "patience"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ParameterError(f"{name} = {v!r} is out of range: allowed integers >= 1 or None")
        if not (isinstance(self.lr, (int, float)) and not isinstance(self.lr, bool) and 0 < self.lr < 10):
            raise ParameterError(f"lr = {self.lr!r} is out of range: allowed (0, 10)")
        if not (isinstance(self.val_fraction, (int, float)) and 0.0 <= self.val_fraction < 0.5):
            raise ParameterError(f"val_fraction = {self.val_fraction!r} is out of range: allowed [0, 0.5)")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2**31:
            raise ParameterError(f"seed = {self.seed!r} is out of range: allowed integers 0..2^31-1")
        s = self.train_sigma_d2d
        if s is not None and not (isinstance(s, (int, float)) and not isinstance(s, bool) and 0.0 <= s <= 5.0):
            raise ParameterError(f"train_sigma_d2d = {s!r} is out of range: allowed [0, 5] (spread of ln mu) or None")
        if s is not None and self.neuron != "1m1t1r":
            raise ParameterError(f"train_sigma_d2d applies to the 1m1t1r neuron only (neuron = {self.neuron!r})")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["task_options"] = [list(kv) for kv in self.task_options]
        if d["ready_width"] == 0:        # off, as before the field existed: earlier runs and models still match
            del d["ready_width"]
        if d["tau_out"] == LEGACY_TAU_OUT:
            del d["tau_out"]
        if d["floor_weight"] == 0:       # none, as before the field existed
            del d["floor_weight"]
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in data.items() if k in known}
        if d.get("task_options") is not None:
            d["task_options"] = tuple(tuple(kv) for kv in d["task_options"])
        d.setdefault("input_map", LEGACY_INPUT_MAP)     # files written before the field existed
        d.setdefault("tau_out", LEGACY_TAU_OUT)
        d.setdefault("ready_width", 0.0)                # files written before it was on by default: off
        d.setdefault("floor_weight", 0.0)               # files written before the lower-rate penalty existed: none
        return cls(**d)


def load_task(config: TrainConfig) -> tasks.Task:
    return tasks.load(config.task, **dict(config.task_options))


def device_bin(config: TrainConfig) -> Bin:
    """The bin of the 1M1T1R cell: the preset's default pulse (paper: 1 ms on / 1 ms off; 3nm:
    10 ns / 20 ns, its dynamics being 1e5 times faster), so the same network fits any preset."""
    from ionspike.stimulus import PulseTrain, from_defaults

    stim = from_defaults(presets.load(config.preset).defaults, f"preset {config.preset!r}: defaults")
    if not isinstance(stim, PulseTrain):
        return Bin(substeps_on=config.substeps_on, substeps_off=config.substeps_off, ready_width=config.ready_width or None)
    return Bin(width=float(stim.width), period=float(stim.period), substeps_on=config.substeps_on,
               substeps_off=config.substeps_off, ready_width=config.ready_width or None)


def build(config: TrainConfig, task: tasks.Task) -> tuple[RSNN, dict]:
    """The network of ``config`` and a description of its neuron (cell, variant note, parameters)."""
    info = {"neuron": config.neuron, "variant": config.variant}
    if config.neuron == "1m1t1r":
        spec = device_bin(config)
        v = variants.make(config.variant, presets.params(config.preset), spec)
        cell: cells.Cell = cells.DeviceCell(v.params, spec, stochastic=v.stochastic, input_map=config.input_map)
        info.update(note=v.note, mu_factor=v.mu_factor, preset=config.preset)
    else:
        spec = Bin()
        cell = cells.LIFCell(spec) if config.neuron == "lif" else cells.ALIFCell(spec)
    info["cell"] = cell.describe()
    net = RSNN(n_in=task.channels, cell=cell, hidden=config.hidden, n_out=task.n_classes,
               bins_per_step=config.bins_per_step, readout=config.readout, rate_limit=RATE_LIMIT,
               rate_weight=float(config.rate_weight), rate_floor=RATE_FLOOR,
               floor_weight=float(config.floor_weight), tau_out=float(config.tau_out))
    return net, info


def params_digest(config: TrainConfig, info: dict) -> str:
    """A hash of what the run resolves to (configuration and the neuron's resolved parameters):
    a checkpoint resumes only a run of the same content, whatever paths its preset came from."""
    cfg = config.to_dict()
    if cfg["input_map"] == LEGACY_INPUT_MAP:        # as before the field existed: earlier files keep their digest
        del cfg["input_map"]
    blob = json.dumps({"config": cfg, "cell": info["cell"]}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _digest(arrays: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        h.update(k.encode())
        h.update(np.ascontiguousarray(arrays[k]).tobytes())
    return h.hexdigest()


def _meta_digest(arrays: dict, meta: dict) -> str:
    """The digest of a file's arrays and of its metadata (history, config): any change to either is seen."""
    blob = json.dumps({k: v for k, v in meta.items() if k != "digest"}, sort_keys=True)
    return hashlib.sha256((_digest(arrays) + blob).encode()).hexdigest()


def _save_npz(path: Path, tree, meta: dict) -> None:
    leaves = jax.tree.leaves(tree)
    arrays = {f"leaf_{i:04d}": np.asarray(v) for i, v in enumerate(leaves)}
    meta = dict(meta, digest=_meta_digest(arrays, meta))
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)


def _load_npz(path: Path, what: str) -> tuple[dict, dict]:
    try:
        with zipfile.ZipFile(path) as zf:          # every member's CRC (NumPy reads members without checking it)
            bad = zf.testzip()
        if bad is not None:
            raise ValueError(f"member {bad!r} fails its CRC check")
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except Exception as exc:  # noqa: BLE001 -- any failure to parse is a corrupt file
        raise CheckpointError(f"{what} {str(path)!r} is corrupt or not an ionspike {what}: {exc}") from None
    # files of earlier ionspike versions recorded the digest of their arrays alone
    if not isinstance(meta, dict) or meta.get("digest") not in (_meta_digest(arrays, meta), _digest(arrays)):
        raise CheckpointError(f"{what} {str(path)!r} is corrupt: its arrays or metadata do not match their "
                              "recorded digest")
    return arrays, meta


def _unflatten(arrays: dict, template, path: Path, what: str):
    leaves, treedef = jax.tree.flatten(template)
    if len(arrays) != len(leaves):
        raise CheckpointError(f"{what} {str(path)!r} holds {len(arrays)} arrays, the network needs {len(leaves)}")
    loaded = []
    for i, ref in enumerate(leaves):
        a = arrays[f"leaf_{i:04d}"]
        if a.shape != np.shape(ref):
            raise CheckpointError(f"{what} {str(path)!r}: array {i} has shape {a.shape}, expected {np.shape(ref)}")
        loaded.append(jnp.asarray(a, dtype=jnp.asarray(ref).dtype))
    return jax.tree.unflatten(treedef, loaded)


def save_checkpoint(path: Path, config: TrainConfig, digest: str, epoch: int, state, history: list,
                    best: dict) -> None:
    """``state`` = (weights, opt_state, best weights), the epoch, the history and the best epoch, in
    one atomically written .npz."""
    _save_npz(path, state, {"format": "ionspike-checkpoint-2", "config": config.to_dict(), "params_digest": digest,
                            "epoch": epoch, "history": history, "best": best})


def load_checkpoint(path: Path, config: TrainConfig, digest: str, template) -> tuple[int, object, list, dict]:
    """``(epoch, state, history, best)`` from ``path``; raises :class:`CheckpointError` if it is
    unreadable, altered, or belongs to a run of other settings or other resolved parameters."""
    arrays, meta = _load_npz(path, "checkpoint")
    if meta.get("format") != "ionspike-checkpoint-2":
        raise CheckpointError(f"checkpoint {str(path)!r} has format {meta.get('format')!r}: expected "
                              "'ionspike-checkpoint-2' (written by another ionspike version: use another --out)")
    saved = meta["config"]
    for k, v in config.to_dict().items():
        if saved.get(k) != v:
            raise CheckpointError(f"checkpoint {str(path)!r} was written with {k} = {saved.get(k)!r}, "
                                  f"this run has {k} = {v!r}: use another --out or the same settings")
    if meta.get("params_digest") != digest:
        raise CheckpointError(f"checkpoint {str(path)!r} was written for other neuron parameters (the preset "
                              f"{config.preset!r} resolves to different values now): use another --out or restore "
                              "the preset")
    return int(meta["epoch"]), _unflatten(arrays, template, path, "checkpoint"), list(meta["history"]), meta["best"]


def save_model(path: Path, config: TrainConfig, digest: str, weights) -> None:
    """The selected (best-validation) weights with the configuration that rebuilds the network."""
    _save_npz(path, weights, {"format": "ionspike-model-1", "config": config.to_dict(), "params_digest": digest})


def load_model(folder: str | Path, option: str = "--model"):
    """``(config, net, weights, task)`` of a trained model folder (``ionspike train --out DIR``);
    ``option``: how errors name the folder."""
    folder = Path(folder)
    path = folder / MODEL
    if not folder.is_dir():
        raise ParameterError(f"{option} {str(folder)!r} is not a folder: allowed the --out folder of `ionspike train`")
    if not path.is_file():
        raise ParameterError(f"{option} {str(folder)!r} holds no {MODEL}: it is not a trained model (train one with "
                             "`ionspike train --out DIR`; an interrupted run has none until it finishes)")
    arrays, meta = _load_npz(path, "model")
    if meta.get("format") != "ionspike-model-1":
        raise CheckpointError(f"model {str(path)!r} has format {meta.get('format')!r}: expected 'ionspike-model-1'")
    config = TrainConfig.from_dict(meta["config"])
    task = load_task(config)
    net, info = build(config, task)
    if params_digest(config, info) != meta.get("params_digest"):
        raise CheckpointError(f"model {str(path)!r} was trained with other neuron parameters than preset "
                              f"{config.preset!r} gives now")
    weights = _unflatten(arrays, net.init(jax.random.key(0)), path, "model")
    return config, net, weights, task


def split(config: TrainConfig, task: tasks.Task):
    """``(x_train, y_train), (x_val, y_val), (x_test, y_test)``: the validation part is a fixed share
    of the training set (a seed-independent permutation), then ``n_train``/``n_test`` cap the sizes."""
    order = np.random.default_rng(VAL_SPLIT_SEED).permutation(len(task.y_train))
    n_val = int(round(config.val_fraction * len(order)))
    val, tr = order[:n_val], np.sort(order[n_val:])
    x_tr, y_tr = task.x_train[tr], task.y_train[tr]
    if config.n_train is not None:
        x_tr, y_tr = x_tr[:config.n_train], y_tr[:config.n_train]
    x_te, y_te = task.x_test, task.y_test
    if config.n_test is not None:
        x_te, y_te = x_te[:config.n_test], y_te[:config.n_test]
    return (x_tr, y_tr), (task.x_train[val], task.y_train[val]), (x_te, y_te)


def evaluate(net: RSNN, weights, instance, x, y, key) -> dict:
    """Accuracy and spikes per sample (hidden layer), in chunks."""
    if len(y) == 0:
        return {"accuracy": None, "spikes_per_sample": None, "firing_rate_per_bin": None}
    correct, spikes = 0, []
    for j in range(0, len(y), EVAL_CHUNK):
        c, s = evaluate_batch(weights, instance, x[j:j + EVAL_CHUNK], y[j:j + EVAL_CHUNK], jax.random.fold_in(key, j),
                              net=net)
        correct += int(c)
        spikes.append(np.asarray(s))
    spikes = np.concatenate(spikes)
    bins = x.shape[1] * net.bins_per_step
    return {"accuracy": correct / len(y), "spikes_per_sample": float(spikes.mean()),
            "firing_rate_per_bin": float(spikes.mean() / (bins * net.hidden))}


SUMMARY_KEYS = ("config", "neuron", "history", "best_epoch", "val_accuracy", "test_accuracy", "spikes_per_sample",
                "firing_rate_per_bin", "synops", "epochs_done", "stopped_early", "seconds")


def result_summary(result: dict) -> dict:
    """The JSON-ready part of a :func:`train` result (what ``result.json`` holds)."""
    return {k: result[k] for k in SUMMARY_KEYS}


def train(config: TrainConfig, out: str | Path | None = None, *, progress: Callable[[int, int, dict], None] | None = None,
          stop_after: int | None = None, task: tasks.Task | None = None) -> dict:
    """Train ``config``; with ``out``, checkpoint every epoch to ``out/checkpoint.npz``, resume from
    it, and write the selected weights to ``out/model.npz`` at the end. ``progress(epoch, epochs,
    row)`` is called after each epoch. ``stop_after``: end after that many epochs in total (an
    interruption, for tests). Returns the result (history, selection, test metrics, and in memory
    the weights, instance, network and task)."""
    map_limit.release_if_near_limit()        # before compiling (build's re-fit of mu too): a process at the kernel's mapping limit dies in XLA
    task = task or load_task(config)
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = split(config, task)
    if config.batch > len(y_tr):
        raise ParameterError(f"batch = {config.batch} is out of range: allowed 1..{len(y_tr)} (training samples)")
    net, info = build(config, task)
    digest = params_digest(config, info)
    root = jax.random.key(config.seed)
    weights = net.init(jax.random.fold_in(root, 0))
    instance = net.draws(jax.random.fold_in(root, 1))
    steps_per_epoch = len(y_tr) // config.batch
    opt_spec = (float(config.lr), config.epochs * steps_per_epoch)
    opt_state = optimizer(*opt_spec).init(weights)
    state = (weights, opt_state, weights)
    history: list = []
    best = {"epoch": 0, "val_accuracy": -1.0}
    start = 0
    folder = None if out is None else prepare_out_dir(out)
    ckpt = None if folder is None else folder / CHECKPOINT
    if ckpt is not None and ckpt.exists():
        start, state, history, best = load_checkpoint(ckpt, config, digest, state)
    weights, opt_state, best_weights = state
    noise_root, eval_key, draw_root = (jax.random.fold_in(root, k) for k in (2, 3, 4))
    last = config.epochs if stop_after is None else min(config.epochs, stop_after)
    stopped = bool(config.patience is not None and history and len(history) - best["epoch"] >= config.patience)
    for epoch in range(start, last):
        if stopped:
            break
        t0 = time.perf_counter()
        order = np.random.default_rng([config.seed, epoch]).permutation(len(y_tr))
        losses, accs = [], []
        skipped_before = int(opt_state.total_notfinite)
        for i in range(steps_per_epoch):
            idx = order[i * config.batch:(i + 1) * config.batch]
            key = jax.random.fold_in(noise_root, epoch * 100000 + i)
            batch_instance = instance if config.train_sigma_d2d is None else \
                net.draws(jax.random.fold_in(draw_root, epoch * 100000 + i), sigma_d2d=config.train_sigma_d2d)
            weights, opt_state, loss, acc = train_step(weights, opt_state, batch_instance, x_tr[idx], y_tr[idx], key,
                                                       net=net, opt_spec=opt_spec)
            losses.append(float(loss))
            accs.append(float(acc))
        if not np.all(np.isfinite(losses)):
            raise FloatingPointError(f"training diverged in epoch {epoch + 1}: non-finite loss in "
                                     f"{int(np.sum(~np.isfinite(losses)))} of {len(losses)} batches")
        if not all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree.leaves(weights)):
            raise FloatingPointError(f"training diverged in epoch {epoch + 1}: non-finite weights (more than "
                                     f"{MAX_SKIPPED_IN_A_ROW} steps in a row with a non-finite gradient)")
        val = evaluate(net, weights, instance, x_va, y_va, eval_key)
        row = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "train_accuracy": float(np.mean(accs)),
               "val_accuracy": val["accuracy"], "spikes_per_sample": val["spikes_per_sample"],
               "seconds": time.perf_counter() - t0,
               "skipped_steps": int(opt_state.total_notfinite) - skipped_before}   # non-finite gradients (rsnn.optimizer)
        history.append(row)
        score = -1.0 if val["accuracy"] is None else val["accuracy"]
        if score > best["val_accuracy"] or val["accuracy"] is None:
            best, best_weights = {"epoch": epoch + 1, "val_accuracy": score}, weights
        if ckpt is not None:
            save_checkpoint(ckpt, config, digest, epoch + 1, (weights, opt_state, best_weights), history, best)
        if progress is not None:
            progress(epoch + 1, config.epochs, row)
        stopped = config.patience is not None and epoch + 1 - best["epoch"] >= config.patience
    test = evaluate(net, best_weights, instance, x_te, y_te, eval_key)     # the test set, once, at the end
    if folder is not None and history:
        save_model(folder / MODEL, config, digest, best_weights)
    return {"config": config.to_dict(), "neuron": info, "history": history, "best_epoch": best["epoch"],
            "val_accuracy": None if best["val_accuracy"] < 0 else best["val_accuracy"],
            "test_accuracy": test["accuracy"], "spikes_per_sample": test["spikes_per_sample"],
            "firing_rate_per_bin": test["firing_rate_per_bin"],
            "synops": None if test["spikes_per_sample"] is None else energy.synops(
                test["spikes_per_sample"], n_in=net.n_in, hidden=net.hidden, n_out=net.n_out,
                bins=x_te.shape[1] * net.bins_per_step),
            "epochs_done": len(history),
            "stopped_early": bool(len(history) < config.epochs), "seconds": float(sum(r["seconds"] for r in history)),
            "weights": best_weights, "instance": instance, "net": net, "task": task}
