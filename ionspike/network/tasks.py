"""Temporal tasks available offline, as arrays ``(samples, steps, channels)`` plus integer labels.

* ``mnist1d``: MNIST-1D (Greydanus 2020) from the ``mnist1d`` package's own procedural
  generator with its published arguments (5000 samples, seed 42, 80/20 split: 4000 train /
  1000 test, 40 steps, 1 channel) -- the canonical dataset, so accuracies compare with the
  literature. Only the generator is used, never its downloader.
* ``digits``: scikit-learn's bundled 8x8 handwritten digits (1797 samples), streamed row by
  row: 8 steps of 8 pixel intensities in [0, 1]; a stratified split (default 20 % test).
* ``working_memory``: a cue (one of ``n_cues`` channels on for ``cue_steps``), a delay of
  ``delay_steps`` steps with low-amplitude noise on every channel, then a go signal on an
  extra channel for ``recall_steps``; the label is the cue. With a device time bin of a few
  ms per step, delays of ~100 steps span several hundred milliseconds of device time, where
  the slow residue can carry the memory.

How task values become device inputs (pulse amplitudes in the device's 0-1.2 V range) is
the network layer's job, not this module's. Every generator is deterministic in ``seed``
and leaves NumPy's global random state as it found it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ionspike.errors import ParameterError

TASKS = ("mnist1d", "digits", "working_memory")


@dataclass(frozen=True)
class Task:
    """A classification task over sequences. ``x_*``: float32 ``(samples, steps, channels)``;
    ``y_*``: int32 ``(samples,)`` labels in ``[0, n_classes)``."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    description: str

    @property
    def steps(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[2])


def _positive_int(name: str, value, lo: int = 1) -> int:
    if not (isinstance(value, (int, np.integer)) and value >= lo):
        raise ParameterError(f"{name} = {value!r} is out of range: allowed integers >= {lo}")
    return int(value)


def _fraction(name: str, value) -> float:
    if not (isinstance(value, (int, float)) and 0.0 < value < 1.0):
        raise ParameterError(f"{name} = {value!r} is out of range: allowed (0, 1)")
    return float(value)


def mnist1d(seed: int = 42, n_samples: int = 5000, train_split: float = 0.8) -> Task:
    """MNIST-1D from the ``mnist1d`` package's generator (defaults: the published dataset)."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = int(seed)
    args.num_samples = _positive_int("n_samples", n_samples, 10)
    args.train_split = _fraction("train_split", train_split)
    state = np.random.get_state()           # the generator seeds NumPy's global RNG; restore it after
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(state)
    as_x = lambda a: np.asarray(a, np.float32)[:, :, None]  # noqa: E731
    return Task("mnist1d", as_x(data["x"]), np.asarray(data["y"], np.int32), as_x(data["x_test"]),
                np.asarray(data["y_test"], np.int32), 10,
                f"MNIST-1D (mnist1d generator, seed {seed}): 40 steps x 1 channel, zero mean, unit std")


def _stratified_split(y: np.ndarray, test_fraction: float, rng: np.random.Generator):
    test = np.zeros(y.size, bool)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        test[idx[:int(round(test_fraction * idx.size))]] = True
    train_idx, test_idx = rng.permutation(np.flatnonzero(~test)), rng.permutation(np.flatnonzero(test))
    return train_idx, test_idx


def digits(seed: int = 0, test_fraction: float = 0.2) -> Task:
    """scikit-learn's 8x8 digits streamed row by row: 8 steps x 8 channels in [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (np.asarray(d.images, np.float32) / 16.0)         # (1797, 8 rows, 8 columns), intensities 0..16
    y = np.asarray(d.target, np.int32)
    tr, te = _stratified_split(y, _fraction("test_fraction", test_fraction), np.random.default_rng(seed))
    return Task("digits", x[tr], y[tr], x[te], y[te], 10,
                f"sklearn 8x8 digits, row by row (8 steps x 8 pixels in [0, 1]), stratified split seed {seed}")


def working_memory(seed: int = 0, n_train: int = 2000, n_test: int = 500, n_cues: int = 4, cue_steps: int = 5,
                   delay_steps: int = 100, recall_steps: int = 5, noise: float = 0.05) -> Task:
    """Cue, delay, recall: remember which of ``n_cues`` channels was on before the delay."""
    n_train = _positive_int("n_train", n_train)
    n_test = _positive_int("n_test", n_test)
    n_cues = _positive_int("n_cues", n_cues, 2)
    cue_steps = _positive_int("cue_steps", cue_steps)
    delay_steps = _positive_int("delay_steps", delay_steps, 0)
    recall_steps = _positive_int("recall_steps", recall_steps)
    if not (isinstance(noise, (int, float)) and 0.0 <= noise < 1.0):
        raise ParameterError(f"noise = {noise!r} is out of range: allowed [0, 1)")
    rng = np.random.default_rng(seed)
    steps = cue_steps + delay_steps + recall_steps

    def make(n):
        y = rng.integers(0, n_cues, n).astype(np.int32)
        x = np.abs(rng.normal(0.0, noise, (n, steps, n_cues + 1))).astype(np.float32)
        x[np.arange(n)[:, None], np.arange(cue_steps)[None, :], y[:, None]] = 1.0   # the cue
        x[:, cue_steps + delay_steps:, n_cues] = 1.0              # go signal
        return x, y

    x_tr, y_tr = make(n_train)
    x_te, y_te = make(n_test)
    return Task("working_memory", x_tr, y_tr, x_te, y_te, n_cues,
                f"cue ({n_cues} channels, {cue_steps} steps), delay {delay_steps} steps, recall {recall_steps} steps "
                f"on a go channel; |N(0, {noise})| background")


def check(name: str) -> str:
    """``name`` if it is a known task (``-`` and ``_`` alike), else a :class:`ParameterError`."""
    key = str(name).replace("-", "_")
    if key not in TASKS:
        raise ParameterError(f"task = {name!r} is unknown: allowed {', '.join(TASKS)}")
    return key


def load(name: str, **kwargs) -> Task:
    """A task by name: one of ``TASKS``."""
    makers = {"mnist1d": mnist1d, "digits": digits, "working_memory": working_memory}
    return makers[check(name)](**kwargs)
