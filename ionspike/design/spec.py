"""What a design asks for: the free variables with their bounds, the targets, the base preset and the
search settings, read from a TOML file (``ionspike design TARGETS.toml``) and checked before anything
runs. Every error names the key, the value and what is allowed.

The file::

    preset = "paper"                 # the base: a built-in name or a preset file (relative to this file)
    seed = 0
    [search]
    population = 12                  # candidates per variable and generation
    generations = 15
    method = "auto"                  # "auto": evolution, then a gradient step where a target has a
                                     # derivative; "evolution"; "gradient" (Sobol sample, then the step)
    starts = 3                       # gradient step: L-BFGS-B starts and iterations per start
    iterations = 20
    [variables]                      # any parameter name or alias that ``ionspike.replace`` knows
    Rc = { low = "100 MOhm", high = "5 GOhm", scale = "log" }
    VDD = { low = "0.3 V", high = "1 V" }
    [[targets]]
    quantity = "rate"                # see QUANTITIES
    pulse = "0.9V,1ms,2ms"           # or dc = "0.8 V"
    duration = "300 ms"
    value = "100 Hz"                 # with tolerance = "10 Hz"; or low = / high = (either or both)
    weight = 1.0

Everything not listed under ``[variables]`` keeps the base preset's value (it is fixed).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ionspike import presets
from ionspike.errors import ParameterError
from ionspike.params import NeuronParams, replace, resolve_name
from ionspike.stimulus import Stimulus, from_defaults
from ionspike.units import parse_quantity

# quantity -> (SI unit, what it is); measured per candidate by ionspike.design.measure
QUANTITIES = {
    "first_spike": ("s", "time of the first spike (deterministic device)"),
    "spike_count": ("1", "spikes within the duration (deterministic device)"),
    "isi": ("s", "mean interspike interval (deterministic device)"),
    "rate": ("Hz", "firing rate, 1 / mean ISI (deterministic device)"),
    "refractory": ("s", "shortest interspike interval: no two spikes closer (deterministic device)"),
    "energy_per_spike": ("J", "energy drawn from the input per output spike (the neuron's own)"),
    "total_energy_per_spike": ("J", "input plus supply energy per output spike"),
    "p_fire": ("1", "probability of at least one spike within the duration (noisy devices, `trials` each)"),
    "ip_ratio": ("1", "intrinsic-plasticity advance ratio: the advance of a second pulse's firing after a 200 ms gap "
                      "over that after a 3 ms gap (paired pulses of `width`, default 20 ms, and `amplitude` V or "
                      "'auto', the default: the amplitude whose first pulse fires at 13/20 of the width; "
                      "deterministic device; no pulse, dc or duration)"),
}
TOP_KEYS = ("preset", "seed", "search", "variables", "targets", "name", "description", "node")
TARGET_KEYS = ("quantity", "pulse", "dc", "duration", "value", "tolerance", "low", "high", "weight", "trials", "set",
               "after", "spread", "devices", "fraction", "amplitude", "width")
IP_KEYS = ("amplitude", "width")   # the ip_ratio target's own stimulus keys
MAX_DEVICES = 1024
SEARCH_KEYS = ("population", "generations", "adaptive", "method", "starts", "iterations")
# the search (ionspike.design.search.run): derivative-free evolution, then a gradient step where a target
# has a derivative ("auto"); evolution only; or a Sobol sample then the gradient step ("gradient")
METHODS = ("auto", "evolution", "gradient")
VARIABLE_KEYS = ("low", "high", "scale")
MAX_TRIALS = 4096


@dataclass(frozen=True)
class Variable:
    """A free parameter: its name as given, its dotted path, SI bounds and search scale."""

    name: str
    path: str
    unit: str
    low: float
    high: float
    log: bool

    def to_unit(self, u):
        """Map the unit interval onto the bounds (log scale when ``log``)."""
        if self.log:
            return math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        return self.low + u * (self.high - self.low)


@dataclass(frozen=True)
class Target:
    """One wanted quantity under one stimulus: accepted within [low, high] (SI; either may be open)."""

    quantity: str
    stimulus: Stimulus
    stimulus_text: str
    duration: float
    low: float
    high: float
    weight: float = 1.0
    trials: int = 200
    conditions: tuple = ()      # ((dotted parameter, SI value), ...) set for this target's measurement
    after: float = 0.0          # s: only spikes after this time count (steady state)
    spread: float = 0.0         # robustness: sigma of ln(mu) across devices (0: the nominal device only)
    devices: int = 0            # ... measured on this many devices (fixed draws, the same for every candidate)
    fraction: float = 0.0       # ... of which at least this fraction must meet [low, high]
    auto_amplitude: bool = False  # ip_ratio: the amplitude is chosen per candidate (13/20 of the width to fire)

    @property
    def robust(self) -> bool:
        return self.spread > 0

    @property
    def unit(self) -> str:
        return QUANTITIES[self.quantity][0]

    @property
    def label(self) -> str:
        where = "".join(f", {name.split('.')[-1]} = {value:g}" for name, value in self.conditions)
        later = f", after {self.after * 1e3:g} ms" if self.after else ""
        robust = (f", {self.fraction:.0%} of {self.devices} devices at sigma(ln mu) = {self.spread:g}"
                  if self.robust else "")
        return f"{self.quantity} @ {self.stimulus_text}, {self.duration * 1e3:g} ms{where}{later}{robust}"

    def wanted(self) -> dict:
        out = {"low": None if math.isinf(self.low) else self.low, "high": None if math.isinf(self.high) else self.high,
               "unit": self.unit}
        if self.robust:     # the achieved value is then the fraction of devices within [low, high]
            out.update(fraction_of_devices=self.fraction, devices=self.devices, sigma_ln_mu=self.spread)
        return out


@dataclass(frozen=True)
class DesignSpec:
    base: NeuronParams
    base_name: str
    variables: tuple[Variable, ...]
    targets: tuple[Target, ...]
    seed: int = 0
    population: int = 12
    generations: int = 15
    adaptive: bool = False      # deterministic measurements with adaptive steps (rtol 1e-4, atol 1e-7)
    method: str = "auto"        # see METHODS
    starts: int = 3             # gradient step: L-BFGS-B starts (the best distinct candidates found before)
    iterations: int = 20        # gradient step: L-BFGS-B iterations per start
    node: str = "65nm"          # technology of the footprint estimate (ionspike.design.area)
    name: str = "design"
    description: str = ""
    source: dict = field(default_factory=dict)


def _table(value: Any, where: str, allowed: tuple) -> dict:
    if not isinstance(value, dict):
        raise ParameterError(f"{where}: expected a table, got {type(value).__name__} {value!r}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ParameterError(f"{where}: unknown key(s) {unknown}; allowed: {list(allowed)}")
    return value


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ParameterError(f"{where} = {value!r} is out of range: allowed integers {lo}..{hi}")
    return value


def _variable(name: str, entry: Any, base: NeuronParams) -> Variable:
    where = f"variables.{name}"
    entry = _table(entry, where, VARIABLE_KEYS)
    section, fname = resolve_name(base, name)      # unknown names raise, listing what is allowed
    record = getattr(base, section)
    meta = next(f for f in type(record).__dataclass_fields__.values() if f.name == fname).metadata
    if "unit" not in meta or fname in getattr(type(record), "_static", ()):
        raise ParameterError(f"{where}: {section}.{fname} is not a continuous parameter and cannot be a design variable")
    unit = meta["unit"]
    if "low" not in entry or "high" not in entry:
        raise ParameterError(f"{where}: give both low and high (in {unit or 'SI units'})")
    low = parse_quantity(entry["low"], unit, name=f"{where}.low")
    high = parse_quantity(entry["high"], unit, name=f"{where}.high")
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ParameterError(f"{where}: low = {entry['low']!r} must be below high = {entry['high']!r}")
    lo_ok, hi_ok = meta.get("lo", -math.inf), meta.get("hi", math.inf)
    if low < lo_ok or high > hi_ok or (meta.get("lo_open") and low <= lo_ok) or (meta.get("hi_open") and high >= hi_ok):
        raise ParameterError(f"{where}: bounds [{low:g}, {high:g}] {unit} leave the parameter's allowed range "
                             f"[{lo_ok:g}, {hi_ok:g}] {unit}")
    scale = entry.get("scale", "linear")
    if scale not in ("linear", "log"):
        raise ParameterError(f"{where}.scale = {scale!r} is unknown: allowed 'linear' or 'log'")
    if scale == "log" and low <= 0:
        raise ParameterError(f"{where}: a log scale needs low > 0 (low = {low:g} {unit})")
    return Variable(name, f"{section}.{fname}", unit, low, high, scale == "log")


def _conditions(entry: Any, where: str, base: NeuronParams, variables: tuple) -> tuple:
    """A target's ``set = { Rc = "250 MOhm" }``: parameters fixed for its measurement (not free ones)."""
    entry = _table(entry, where, tuple(entry) if isinstance(entry, dict) else ())
    out = []
    for name, value in entry.items():
        section, fname = resolve_name(base, name)
        path = f"{section}.{fname}"
        if path in {v.path for v in variables}:
            raise ParameterError(f"{where}.{name}: {path} is a design variable; a target cannot also set it")
        record = getattr(base, section)
        meta = next(f for f in type(record).__dataclass_fields__.values() if f.name == fname).metadata
        if "unit" not in meta or fname in getattr(type(record), "_static", ()):
            raise ParameterError(f"{where}.{name}: {path} is not a continuous parameter")
        out.append((path, parse_quantity(value, meta["unit"], name=f"{where}.{name}")))
    replace(base, **dict(out))                       # range checks of the values, naming the field
    return tuple(sorted(out))


def _stimulus(entry: dict, where: str) -> tuple:
    """(stimulus, its text, duration in s) of a target with ``pulse`` or ``dc`` and ``duration``."""
    extra = [k for k in IP_KEYS if k in entry]
    if extra:
        raise ParameterError(f"{where}.{extra[0]} applies to quantity = 'ip_ratio' only (its paired pulses); "
                             "other quantities take pulse = or dc =")
    if ("pulse" in entry) == ("dc" in entry):
        raise ParameterError(f"{where}: give exactly one stimulus, pulse = \"0.9V,1ms,2ms\" or dc = \"0.8 V\"")
    kind = "pulse" if "pulse" in entry else "dc"
    stimulus = from_defaults({kind: entry[kind]}, where)
    if "duration" not in entry:
        raise ParameterError(f"{where}: give duration (e.g. \"300 ms\")")
    duration = parse_quantity(entry["duration"], "s", name=f"{where}.duration")
    if not (math.isfinite(duration) and duration > 0):
        raise ParameterError(f"{where}.duration = {entry['duration']!r} is out of range: allowed (0, inf) s")
    return stimulus, (str(entry[kind]) if kind == "pulse" else f"DC {entry[kind]}"), duration, False


def _ip_stimulus(entry: dict, where: str) -> tuple:
    """The ip_ratio target's paired pulses: ``amplitude`` (V, or "auto", the default: chosen per
    candidate) and ``width`` (default 20 ms), at the paper's gaps of 3 ms and 200 ms. Returns
    (stimulus, text, duration in s, whether the amplitude is "auto"; its stimulus then holds 1 V as a
    placeholder)."""
    from ionspike.protocols.plasticity import RATIO_GAPS_S
    from ionspike.stimulus import paired_pulses

    for k in ("pulse", "dc", "duration", "after"):
        if k in entry:
            raise ParameterError(f"{where}.{k}: quantity = 'ip_ratio' has its own paired pulses (gaps 3 ms and "
                                 "200 ms): give amplitude = and width = instead")
    width = parse_quantity(entry.get("width", "20 ms"), "s", name=f"{where}.width")
    if not (math.isfinite(width) and 0 < width <= 1.0):
        raise ParameterError(f"{where}.width = {entry.get('width')!r} is out of range: allowed (0, 1] s")
    amplitude = entry.get("amplitude", "auto")
    if isinstance(amplitude, str) and amplitude.strip().lower() == "auto":
        amp, shown = math.nan, "auto"
    else:
        amp = parse_quantity(amplitude, "V", name=f"{where}.amplitude")
        if not (math.isfinite(amp) and 0 < amp <= 100):
            raise ParameterError(f"{where}.amplitude = {amplitude!r} is out of range: allowed (0, 100] V or 'auto'")
        shown = f"{amp:g} V"
    gaps = list(RATIO_GAPS_S)
    auto = math.isnan(amp)
    stimulus = paired_pulses(1.0 if auto else amp, [width] * len(gaps), gaps)
    return (stimulus, f"paired pulses {shown}, {width * 1e3:g} ms, gaps 3/200 ms", float(2 * width + max(gaps) + 5e-3),
            auto)


def _target(i: int, entry: Any, base: NeuronParams, variables: tuple) -> Target:
    where = f"targets[{i}]"
    entry = _table(entry, where, TARGET_KEYS)
    q = entry.get("quantity")
    if q not in QUANTITIES:
        raise ParameterError(f"{where}.quantity = {q!r} is unknown: allowed {', '.join(QUANTITIES)}")
    unit = QUANTITIES[q][0]
    parse_unit = "" if unit == "1" else unit
    stimulus, text, duration, auto = (_ip_stimulus if q == "ip_ratio" else _stimulus)(entry, where)
    low, high = -math.inf, math.inf
    if "value" in entry:
        if "low" in entry or "high" in entry:
            raise ParameterError(f"{where}: give value (with tolerance) or low/high, not both")
        value = parse_quantity(entry["value"], parse_unit, name=f"{where}.value")
        tol = parse_quantity(entry.get("tolerance", 0.0), parse_unit, name=f"{where}.tolerance")
        if not tol >= 0:
            raise ParameterError(f"{where}.tolerance = {entry.get('tolerance')!r} is out of range: allowed >= 0")
        low, high = value - tol, value + tol
    else:
        if "tolerance" in entry:
            raise ParameterError(f"{where}: tolerance goes with value")
        if "low" in entry:
            low = parse_quantity(entry["low"], parse_unit, name=f"{where}.low")
        if "high" in entry:
            high = parse_quantity(entry["high"], parse_unit, name=f"{where}.high")
        if math.isinf(low) and math.isinf(high):
            raise ParameterError(f"{where}: give value (with tolerance), low or high")
    if not low <= high:
        raise ParameterError(f"{where}: low = {low:g} {unit} is above high = {high:g} {unit}")
    if q == "p_fire" and (low > 1 or high < 0):
        raise ParameterError(f"{where}: p_fire lies in [0, 1]; the target [{low:g}, {high:g}] cannot be measured")
    if q not in ("p_fire", "spike_count") and high <= 0:
        raise ParameterError(f"{where}: {q} is positive; the target [{low:g}, {high:g}] {unit} cannot be measured")
    weight = entry.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (0 < weight < 1e6):
        raise ParameterError(f"{where}.weight = {weight!r} is out of range: allowed (0, 1e6)")
    if "trials" in entry and q != "p_fire":
        raise ParameterError(f"{where}.trials applies to quantity = 'p_fire' only (its noisy devices); {q} is "
                             "measured on the deterministic device")
    trials = _int(entry.get("trials", 200), f"{where}.trials", 1, MAX_TRIALS)
    conditions = _conditions(entry.get("set", {}), f"{where}.set", base, variables)
    after = parse_quantity(entry.get("after", 0.0), "s", name=f"{where}.after")
    if not 0 <= after < duration:
        raise ParameterError(f"{where}.after = {entry.get('after')!r} is out of range: allowed [0, duration) s")
    if after and q not in ("spike_count", "isi", "rate", "refractory"):
        raise ParameterError(f"{where}.after applies to spike_count, isi, rate and refractory, not to {q}")
    spread, devices, fraction = 0.0, 0, 0.0
    if any(k in entry for k in ("spread", "devices", "fraction")):
        if q in ("p_fire", "ip_ratio"):
            raise ParameterError(f"{where}: spread/devices/fraction apply to the single-stimulus deterministic "
                                 f"quantities, not {q}")
        spread = entry.get("spread")
        if isinstance(spread, bool) or not isinstance(spread, (int, float)) or not 0 < spread <= 2:
            raise ParameterError(f"{where}.spread = {spread!r} is out of range: allowed (0, 2] (sigma of ln mu)")
        devices = _int(entry.get("devices", 32), f"{where}.devices", 2, MAX_DEVICES)
        fraction = entry.get("fraction", 0.9)
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise ParameterError(f"{where}.fraction = {fraction!r} is out of range: allowed (0, 1]")
    return Target(q, stimulus, text, duration, low, high, float(weight), trials, conditions, after, float(spread),
                  devices, float(fraction), auto)


def load(path: str | Path) -> DesignSpec:
    """Read and check a targets file."""
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"targets file {str(path)!r} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ParameterError(f"targets file {str(path)!r} is not valid TOML: {exc}") from None
    return from_dict(data, folder=path.parent)


def from_dict(data: dict, folder: Path | None = None) -> DesignSpec:
    data = _table(data, "targets file", TOP_KEYS)
    ref = data.get("preset", "paper")
    if not isinstance(ref, str):
        raise ParameterError(f"preset = {ref!r}: expected a preset name or file")
    if folder is not None and presets._is_path(ref) and not Path(ref).is_absolute():
        ref = str(folder / ref)
    base = presets.load(ref)
    variables = data.get("variables")
    if not isinstance(variables, dict) or not variables:
        raise ParameterError("variables: give at least one free parameter, e.g. Rc = { low = \"100 MOhm\", high = \"1 GOhm\" }")
    vs = tuple(_variable(k, v, base.params) for k, v in variables.items())
    paths = [v.path for v in vs]
    if len(set(paths)) != len(paths):
        raise ParameterError(f"variables name the same parameter twice: {paths}")
    targets = data.get("targets")
    if not isinstance(targets, list) or not targets:
        raise ParameterError("targets: give at least one [[targets]] table")
    ts = tuple(_target(i, t, base.params, vs) for i, t in enumerate(targets))
    search = _table(data.get("search", {}), "search", SEARCH_KEYS)
    adaptive = search.get("adaptive", False)
    if not isinstance(adaptive, bool):
        raise ParameterError(f"search.adaptive = {adaptive!r}: allowed true or false")
    seed = _int(data.get("seed", 0), "seed", 0, 2**31 - 1)
    method = search.get("method", "auto")
    if method not in METHODS:
        raise ParameterError(f"search.method = {method!r} is unknown: allowed {', '.join(map(repr, METHODS))}")
    if method == "gradient":
        from ionspike.design.gradient import DIFFERENTIABLE, differentiable

        if not any(differentiable(t) for t in ts):
            raise ParameterError(f"search.method = 'gradient': no target has a derivative (those that do: "
                                 f"{', '.join(DIFFERENTIABLE)} under a dc input, on the nominal device); use "
                                 "'auto' or 'evolution'")
    from ionspike.design.area import PRESET_NODES, TECHNOLOGIES

    node = data.get("node", PRESET_NODES.get(str(data.get("preset", "paper")), "65nm"))
    if node not in TECHNOLOGIES:
        raise ParameterError(f"node = {node!r} is unknown: allowed {', '.join(TECHNOLOGIES)}")
    return DesignSpec(base=base.params, base_name=str(data.get("preset", "paper")), variables=vs, targets=ts,
                      seed=seed, population=_int(search.get("population", 12), "search.population", 2, 1000),
                      generations=_int(search.get("generations", 15), "search.generations", 1, 10000),
                      adaptive=adaptive, method=method, starts=_int(search.get("starts", 3), "search.starts", 1, 100),
                      iterations=_int(search.get("iterations", 20), "search.iterations", 1, 10000), node=node,
                      name=str(data.get("name", "design")), description=str(data.get("description", "")),
                      source=data)
