"""A sweep study: its definition, how it splits into tasks, and what one task computes.

A study is a grid over parameter and stimulus axes (``Rc = ["50 MOhm", "250 MOhm"]``,
``amplitude = "0.6..1.2 V in 13 steps"``, ``sigma_d2d_ln_mu = [0, 0.1, 0.2]``) with ``n`` devices
per grid point, one stimulus, a duration, a seed and the metrics to keep. Its results are one
array per metric with the axes and ``device`` as dimensions.

* **Tasks** are blocks of that array (a few grid points x a few devices, at most ``task_size``
  neurons); one task is one batched :func:`ionspike.simulate` call. The blocks are also the Zarr
  chunks, so every task writes exactly its own chunks.
* **Exactness**: every neuron's random streams (device spread, noise) are named by its global
  index in the grid (``simulate(neuron_ids=...)``), so a result depends on its seed, parameters
  and position only, never on how the grid was split or which worker ran it.

Study file (TOML), every value with units where it has them::

    preset = "paper"            # a built-in preset or a preset file (relative to this file)
    duration = "40 ms"
    dt = "2 us"                 # optional: the preset's
    n = 50                      # devices per grid point
    seed = 0
    deterministic = false       # true: no noise, no spread
    metrics = ["first_spike_s", "spike_count", "fired", "energy_per_spike_J"]   # optional: all
    task_size = 2048            # optional: neurons per task (memory per worker)

    [stimulus]                  # kind = "pulse" (amplitude, width, period) or "dc" (amplitude)
    kind = "pulse"
    amplitude = "0.8 V"
    width = "1 ms"
    period = "2 ms"

    [axes]                      # any parameter name of `ionspike presets` (aliases too) or a stimulus field
    Rc = ["50 MOhm", "250 MOhm", "500 MOhm"]
    amplitude = "0.6..1.2 V in 13 steps"     # also "A..B UNIT in N log steps"
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from ionspike.errors import ParameterError
from ionspike.units import parse_quantity

#: metric name -> (unit, meaning); every metric is per device, NaN where undefined
METRICS = {
    "first_spike_s": ("s", "time of the first output spike (V_g through V_T)"),
    "spike_count": ("1", "output spikes within the duration"),
    "isi_mean_s": ("s", "mean inter-spike interval (two or more spikes)"),
    "isi_cv": ("1", "coefficient of variation of the inter-spike intervals (three or more spikes)"),
    "fired": ("1", "1 if the neuron spiked at least once, else 0 (its mean over devices is P(fire))"),
    "switch_delay_s": ("s", "time of the first DM turn-on (the switching delay)"),
    "energy_per_spike_J": ("J", "energy drawn from the input and from V_DD per output spike"),
}
STIMULUS_FIELDS = {"pulse": {"amplitude": "V", "width": "s", "period": "s"}, "dc": {"amplitude": "V"}}
DEFAULT_TASK_SIZE = 2048
MAX_POINTS = 10_000_000
_RANGE = re.compile(r"^\s*(?P<a>.+?)\s*\.\.\s*(?P<b>.+?)\s+in\s+(?P<n>\d+)\s+(?P<log>log\s+)?steps?\s*$")


@dataclasses.dataclass(frozen=True)
class Study:
    """A resolved study (SI values). ``axes``: ``((name, values), ...)`` in grid order."""

    preset: str
    stimulus: tuple            # (("kind", ...), (field, SI value), ...)
    duration: float
    dt: float | None
    n: int
    seed: int
    deterministic: bool
    axes: tuple
    metrics: tuple
    task_size: int = DEFAULT_TASK_SIZE
    preset_path: str | None = None   # where a preset file was found (None: built-in)

    @property
    def shape(self) -> tuple:
        return tuple(len(v) for _, v in self.axes) + (self.n,)

    @property
    def dims(self) -> tuple:
        return tuple(name for name, _ in self.axes) + ("device",)

    def identity(self) -> str:
        """The study as canonical JSON (what a store records and a resume must match)."""
        d = dataclasses.asdict(self)
        d.pop("preset_path")
        return json.dumps(d, sort_keys=True)

    def params(self):
        from ionspike import presets

        return presets.load(self.preset_path or self.preset).params


def _quantity(value, unit: str, name: str) -> float:
    if isinstance(value, bool):
        raise ParameterError(f"{name} = {value!r}: expected a number or a quantity in {unit or 'no unit'}")
    return parse_quantity(value, "" if unit == "1" else unit, name=name)


def _axis_values(name: str, spec, unit: str, where: str) -> np.ndarray:
    label = f"{where}: axis {name!r}"
    if isinstance(spec, str):
        m = _RANGE.match(spec)
        if not m:
            raise ParameterError(f"{label} = {spec!r}: allowed a list of values or 'A..B [UNIT] in N steps' "
                                 "(or 'in N log steps')")
        a, b, count = m.group("a"), m.group("b"), int(m.group("n"))
        bare = re.fullmatch(r"[-+0-9.eE]+", a.strip())
        if bare and not re.fullmatch(r"[-+0-9.eE]+", b.strip()):      # "0.6..1.2 V": the unit is written once
            a = a + " " + b.strip().split(None, 1)[-1] if " " in b.strip() else a
        lo, hi = _quantity(a, unit, label), _quantity(b, unit, label)
        if count < 1:
            raise ParameterError(f"{label} = {spec!r} is empty: allowed N >= 1 steps")
        if m.group("log"):
            if lo <= 0 or hi <= 0:
                raise ParameterError(f"{label} = {spec!r}: log steps need positive ends")
            return np.geomspace(lo, hi, count)
        return np.linspace(lo, hi, count)
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ParameterError(f"{label} is empty: allowed one or more values")
        return np.array([_quantity(v, unit, label) for v in spec], float)
    return np.array([_quantity(spec, unit, label)], float)


def from_dict(data: dict, *, where: str = "study", base: Path | None = None) -> Study:
    """A :class:`Study` from the parsed study file; errors name the key, the value and what is allowed."""
    from ionspike import params as P
    from ionspike import presets

    known = {"preset", "duration", "dt", "n", "seed", "deterministic", "metrics", "task_size", "stimulus", "axes"}
    extra = sorted(set(data) - known)
    if extra:
        raise ParameterError(f"{where}: unknown key(s) {extra}: allowed {sorted(known)}")
    preset = str(data.get("preset", "paper"))
    preset_path = None
    if base is not None and (base / preset).is_file():
        preset_path = str((base / preset).resolve())
    loaded = presets.load(preset_path or preset)
    p = loaded.params
    duration = _quantity(data.get("duration", "40 ms"), "s", f"{where}: duration")
    dt = None if data.get("dt") is None else _quantity(data["dt"], "s", f"{where}: dt")
    n = data.get("n", 1)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_POINTS:
        raise ParameterError(f"{where}: n = {n!r} is out of range: allowed integers 1..{MAX_POINTS} (devices per point)")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ParameterError(f"{where}: seed = {seed!r} is out of range: allowed integers 0..2^63-1")
    deterministic = data.get("deterministic", False)
    if not isinstance(deterministic, bool):
        raise ParameterError(f"{where}: deterministic = {deterministic!r}: allowed true or false")
    metrics = tuple(data.get("metrics", list(METRICS)))
    bad = [m for m in metrics if m not in METRICS]
    if bad or not metrics:
        raise ParameterError(f"{where}: metrics {bad or '[]'} unknown or empty: allowed {list(METRICS)}")
    task_size = data.get("task_size", DEFAULT_TASK_SIZE)
    if isinstance(task_size, bool) or not isinstance(task_size, int) or not 1 <= task_size <= 1_000_000:
        raise ParameterError(f"{where}: task_size = {task_size!r} is out of range: allowed integers 1..1000000")
    stim = dict(data.get("stimulus", {"kind": "pulse", "amplitude": "0.8 V", "width": "1 ms", "period": "2 ms"}))
    kind = stim.pop("kind", "pulse")
    if kind not in STIMULUS_FIELDS:
        raise ParameterError(f"{where}: stimulus kind = {kind!r}: allowed {sorted(STIMULUS_FIELDS)}")
    fields = STIMULUS_FIELDS[kind]
    extra = sorted(set(stim) - set(fields))
    if extra:
        raise ParameterError(f"{where}: stimulus field(s) {extra} unknown for kind {kind!r}: allowed {sorted(fields)}")
    stimulus = [("kind", kind)] + [(f, _quantity(stim[f], u, f"{where}: stimulus.{f}")) for f, u in fields.items()
                                   if f in stim]
    missing = [f for f in fields if f not in stim]
    if missing:
        raise ParameterError(f"{where}: stimulus lacks {missing} (kind {kind!r} needs {sorted(fields)})")
    axes_in = data.get("axes", {})
    if not isinstance(axes_in, dict):
        raise ParameterError(f"{where}: [axes] must be a table of name = values")
    axes = []
    for name, spec in axes_in.items():
        if name in fields:
            values = _axis_values(name, spec, fields[name], where)
        else:
            try:
                section, fname = P.resolve_name(p, name)
            except ParameterError as exc:
                raise ParameterError(f"{where}: axis {name!r} is neither a stimulus field {sorted(fields)} nor a "
                                     f"parameter ({exc})") from None
            record = getattr(p, section)
            fld = next(f for f in dataclasses.fields(record) if f.name == fname)
            if "unit" not in fld.metadata:
                raise ParameterError(f"{where}: axis {name!r} ({section}.{fname}) is not a numeric parameter")
            unit = fld.metadata["unit"]
            values = _axis_values(name, spec, unit, where)
            for v in (values.min(), values.max()):     # the parameter's own range check, naming the field
                P.replace(p, **{f"{section}.{fname}": float(v)})
        axes.append((name, tuple(float(v) for v in values)))
    study = Study(preset=preset, stimulus=tuple(stimulus), duration=duration, dt=dt, n=n, seed=seed,
                  deterministic=deterministic, axes=tuple(axes), metrics=metrics, task_size=task_size,
                  preset_path=preset_path)
    if math.prod(study.shape) > MAX_POINTS * 10:
        raise ParameterError(f"{where}: {math.prod(study.shape)} neurons in the study: allowed up to {MAX_POINTS * 10}")
    return study


def load(path: str | Path) -> Study:
    """The study in a TOML file."""
    p = Path(path)
    if not p.is_file():
        raise ParameterError(f"study file {str(p)!r} does not exist")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ParameterError(f"study file {str(p)!r} is not valid TOML: {exc}") from None
    return from_dict(data, where=f"study {p.name}", base=p.parent)


# ------------------------------------------------------------------------------------- tasks
def chunk_shape(study: Study) -> tuple:
    """The block shape of one task: whole inner dimensions first (devices, then the last axis, ...),
    as many as fit in ``task_size`` neurons."""
    shape = study.shape
    chunk = [1] * len(shape)
    room = study.task_size
    for d in reversed(range(len(shape))):
        take = min(shape[d], max(room, 1))
        chunk[d] = take
        room //= take
        if take < shape[d]:
            break
    return tuple(chunk)


@dataclasses.dataclass(frozen=True)
class Task:
    """One block of the study's arrays: its index in the block grid and its slices."""

    index: int
    slices: tuple   # ((start, stop) per dimension)

    def region(self, dims) -> dict:
        return {d: slice(a, b) for d, (a, b) in zip(dims, self.slices)}


def tasks(study: Study) -> list[Task]:
    shape, chunk = study.shape, chunk_shape(study)
    starts = [range(0, s, c) for s, c in zip(shape, chunk)]
    out = []
    for i, corner in enumerate(itertools.product(*starts)):
        out.append(Task(i, tuple((a, min(a + c, s)) for a, c, s in zip(corner, chunk, shape))))
    return out


def compute(study: Study, params, task: Task) -> dict[str, np.ndarray]:
    """Run one task (one batched simulate call): ``{metric: array of the block's shape}``."""
    from ionspike import params as P
    from ionspike.simulate import simulate
    from ionspike.stimulus import DC, PulseTrain

    block = tuple(b - a for a, b in task.slices)
    grids = np.meshgrid(*[np.arange(a, b) for a, b in task.slices], indexing="ij")
    flat = [g.ravel() for g in grids]
    ids = np.ravel_multi_index(flat, study.shape)
    stim_values = dict(study.stimulus)
    kind = stim_values.pop("kind")
    overrides = {}
    for d, (name, values) in enumerate(study.axes):
        col = np.asarray(values)[flat[d]]
        if name in STIMULUS_FIELDS[kind]:
            stim_values[name] = col
        else:
            overrides[name] = col
    # every task is padded to the full block (a smaller edge block repeats its first neuron under ids
    # beyond the grid, results dropped), so all tasks of a study share one compiled program
    size, full = len(ids), math.prod(chunk_shape(study))
    pad = np.zeros(full - size, int)
    ids = np.concatenate([ids, math.prod(study.shape) + np.arange(full - size)])
    for name, col in list(stim_values.items()) + list(overrides.items()):
        if isinstance(col, np.ndarray):
            (stim_values if name in stim_values else overrides)[name] = np.concatenate([col, col[pad]])
    p = P.replace(params, **overrides) if overrides else params
    stim = PulseTrain(**stim_values) if kind == "pulse" else DC(**stim_values)
    ds = simulate(p, stim, duration=study.duration, dt=study.dt, n=full, seed=study.seed,
                  deterministic=study.deterministic, signals=(), neuron_ids=ids, devices=None,
                  max_events=max_events(study, params))
    return {k: v[:size].reshape(block) for k, v in metrics_of(ds, study.metrics).items()}


def max_events(study: Study, params) -> int:
    """One event-buffer size for every task of the study (simulate's automatic rule, taken at the
    study's smallest R_c C_g), so that all tasks share one compiled program; a buffer that
    overflows still grows and the task reruns, values unchanged."""
    from ionspike import params as P
    from ionspike.simulate import AUTO_MAX_EVENTS_CAP, BASE_MAX_EVENTS

    r_c, c_g = float(np.min(params.circuit.r_c)), float(np.min(params.circuit.c_g))
    for name, values in study.axes:
        if name in STIMULUS_FIELDS["pulse"]:
            continue
        path = P.resolve_name(params, name)
        if path == ("circuit", "r_c"):
            r_c = min(values)
        elif path == ("circuit", "c_g"):
            c_g = min(values)
    return int(min(BASE_MAX_EVENTS + math.ceil(study.duration / (r_c * c_g)), AUTO_MAX_EVENTS_CAP))


def metrics_of(ds, names) -> dict[str, np.ndarray]:
    """Per-neuron metrics of a simulate Dataset (NaN where undefined). Besides :data:`METRICS`:
    ``isi_min_s`` (the shortest interval) and ``energy_input_per_spike_J`` (the input's energy per
    output spike, the neuron's own), used by :mod:`ionspike.design`."""
    t = ds["spike_time"].values
    count = np.isfinite(t).sum(axis=1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        isi = np.diff(t, axis=1)
        n_isi = np.isfinite(isi).sum(axis=1)
        mean = np.where(n_isi >= 1, np.nansum(np.where(np.isfinite(isi), isi, 0.0), axis=1) / np.maximum(n_isi, 1),
                        np.nan)
        var = np.nansum(np.where(np.isfinite(isi), (isi - mean[:, None]) ** 2, 0.0), axis=1) / np.maximum(n_isi - 1, 1)
        cv = np.where(n_isi >= 2, np.sqrt(var) / mean, np.nan)
        shortest = np.where(n_isi >= 1, np.min(np.where(np.isfinite(isi), isi, np.inf), axis=1, initial=np.inf), np.nan)
        first = np.where(count > 0, np.nanmin(np.where(np.isfinite(t), t, np.inf), axis=1), np.nan)
        per_spike = np.where(count > 0, count, np.nan)
        energy = (ds["energy_input"].values + ds["energy_supply"].values) / per_spike
        energy_input = ds["energy_input"].values / per_spike
        switch = None
        if "switch_delay_s" in names:
            on = ds["dm_on_time"].values
            switch = np.where(np.isfinite(on).any(axis=1),
                              np.nanmin(np.where(np.isfinite(on), on, np.inf), axis=1), np.nan)
    out = {"first_spike_s": first, "spike_count": count, "isi_mean_s": mean, "isi_cv": cv, "isi_min_s": shortest,
           "fired": (count > 0).astype(float), "switch_delay_s": switch, "energy_per_spike_J": energy,
           "energy_input_per_spike_J": energy_input}
    return {k: np.asarray(out[k], float) for k in names}


def describe(study: Study) -> dict[str, Any]:
    """JSON-ready description (attributes of the store)."""
    return {"preset": study.preset, "stimulus": dict(study.stimulus), "duration_s": study.duration, "dt_s": study.dt,
            "devices_per_point": study.n, "seed": study.seed, "deterministic": study.deterministic,
            "axes": {name: list(v) for name, v in study.axes}, "metrics": list(study.metrics),
            "task_size": study.task_size, "chunk": list(chunk_shape(study)), "tasks": len(tasks(study))}
