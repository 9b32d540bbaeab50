"""Parameter records of the 1M1T1R neuron, with units, ranges and validation.

Records are frozen dataclasses registered as JAX pytrees, so they pass through ``jit``
and may hold per-neuron arrays (device-to-device spread). Every field declares its SI
unit and allowed range in its metadata; concrete values are checked when a record is
built, and a violation raises :class:`~ionspike.errors.ParameterError` naming the field,
the value and the range. Units are accepted as strings only at the edges (presets, CLI,
:func:`replace`), never inside the numerics.

Symbols follow docs/model.md §3 (equations) and §4.1 (parameter reference).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

import jax
import numpy as np

from ionspike import checks
from ionspike.errors import ParameterError
from ionspike.units import format_quantity, json_number, parse_quantity

INF = math.inf


def _f(unit: str, lo: float, hi: float = INF, *, lo_open: bool = False, hi_open: bool = False,
       doc: str = "", default: Any = dataclasses.MISSING, allow_inf: bool = False):
    """A float field with its SI unit and allowed interval between lo and hi (an infinite
    upper bound is open: the value must be finite, unless ``allow_inf``)."""
    meta = dict(unit=unit, lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open or (hi == INF and not allow_inf),
                doc=doc)
    return field(default=default, metadata=meta)


def _range_text(meta: dict) -> str:
    lo = "(" if meta["lo_open"] else "["
    hi = ")" if meta["hi_open"] else "]"
    unit = meta["unit"]
    u = f" {unit}" if unit else ""
    return f"{lo}{meta['lo']:g}, {meta['hi']:g}{hi}{u}"


def _check_field(owner: str, name: str, value: Any, meta: dict) -> None:
    if isinstance(value, jax.core.Tracer):
        return  # validated where the concrete record was built
    arr = np.asarray(value, dtype=float)
    where = f"{owner}.{name}"
    if arr.ndim > 1 or arr.size == 0:
        raise ParameterError(f"{where}: expected a number or a non-empty 1-D array (one value per neuron), "
                             f"got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ParameterError(f"{where} = nan is not a number; allowed range {_range_text(meta)}")
    lo, hi = meta["lo"], meta["hi"]
    bad_lo = (arr <= lo) if meta["lo_open"] else (arr < lo)
    bad_hi = (arr >= hi) if meta["hi_open"] else (arr > hi)
    bad = bad_lo | bad_hi
    if bad.any():
        shown = arr[bad].flat[0]
        pretty = format_quantity(float(shown), meta["unit"]) if meta["unit"] else f"{shown:g}"
        raise ParameterError(
            f"{where} = {pretty} is out of range: allowed {_range_text(meta)}"
            + (f" ({meta['doc']})" if meta["doc"] else "")
        )


def _coerce(where: str, value: Any, unit: str) -> Any:
    """A field value as the record stores it: a float, or a NumPy/JAX array of floats.

    Unit strings are parsed (``"10 pF"``), lists and tuples become arrays; bools, complex
    numbers, strings inside arrays and other types are refused with a ParameterError.
    """
    if isinstance(value, str):
        return parse_quantity(value, unit, name=where)
    if isinstance(value, (bool, np.bool_)):
        raise ParameterError(f"{where} = {value!r}: expected a number{' in ' + unit if unit else ''}, not a bool")
    if isinstance(value, jax.core.Tracer):
        return value  # inside a JAX transformation: checked where the concrete record is built
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value):
        # per-neuron values as to_dict writes them (numbers, "inf"): each parsed like a scalar
        value = [parse_quantity(v, unit, name=f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (jax.Array, np.ndarray, list, tuple)):
        try:
            dtype = value.dtype if isinstance(value, (jax.Array, np.ndarray)) else np.asarray(value).dtype
        except (TypeError, ValueError):  # ragged nested lists
            dtype = np.dtype(object)
        if dtype.kind not in "iuf":
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            raise ParameterError(f"{where} = {shown}: expected numbers (SI{', ' + unit if unit else ''}), "
                                 f"got an array of {dtype}")
        return value if isinstance(value, (jax.Array, np.ndarray)) else np.asarray(value, dtype=float)
    return parse_quantity(value, unit, name=where)  # a real number: float, with overflow and NaN checks


class _Record:
    """Mixin: validation on construction, float-field iteration, dict round trip."""

    _static: tuple[str, ...] = ()
    _section: str = ""  # how users address the record: "memristor", "circuit", ...

    def __post_init__(self):
        floats = [f for f in dataclasses.fields(self) if f.name not in self._static]
        if not checks.user_values(getattr(self, f.name) for f in floats):
            return  # rebuilt inside a JAX transformation (tracers, placeholders): validated where built
        sizes = {}
        for f in floats:
            where = f"{self._section}.{f.name}"
            value = _coerce(where, getattr(self, f.name), f.metadata["unit"])
            if not isinstance(value, (jax.Array, np.ndarray)):
                value = float(value)
            object.__setattr__(self, f.name, value)
            _check_field(self._section, f.name, value, f.metadata)
            if np.size(value) != 1:
                sizes[f.name] = int(np.size(value))
        if len(set(sizes.values())) > 1:
            raise ParameterError(f"{self._section}: per-neuron arrays have different lengths {sizes}; "
                                 "allowed: one length n for every per-neuron field (or scalars)")
        self._check_relations()

    def _check_relations(self) -> None:
        pass

    @classmethod
    def float_fields(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if f.name not in cls._static]

    def to_dict(self) -> dict[str, Any]:
        """Plain SI values (lists for per-neuron arrays), JSON-ready."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (jax.Array, np.ndarray)):
                v = np.asarray(v)
                v = v.item() if v.ndim == 0 else v.tolist()
            out[f.name] = json_number(v)  # inf -> "inf": JSON has none; parse_quantity reads it back
        return out


def _register(cls, static: tuple[str, ...] = ()):
    cls._static = static
    names = [f.name for f in dataclasses.fields(cls)]
    jax.tree_util.register_dataclass(
        cls, data_fields=[n for n in names if n not in static], meta_fields=list(static)
    )
    return cls


@dataclass(frozen=True)
class Memristor(_Record):
    """Ag diffusive memristor: filament ``F`` + residue ``R`` (docs/model.md §3.2–3.5).

    Growth rate ``a = mu [V_m - v_h]_+ / (alpha + |1 - x|)``, dissolution ``(gamma1 + beta) F``,
    transfer ``beta F`` to the residue, residue decay ``gamma2 R``; resistance
    ``R_d = r_on x̄ + r_off (exp((1 - x̄)/lam) - 1)/(exp(1/lam) - 1)``, ``x̄ = clip(F + R, 0, 1)``.
    ``polarity``: ``"asymmetric"`` (only positive ``V_m`` drives growth) or ``"symmetric"`` (``|V_m|``).
    A symmetric device's drift onset for negative ``V_m`` is ``v_h + v_h_reverse_shift`` and its
    growth rate ``mu * mu_reverse_factor`` (real "symmetric" devices have two different
    interfaces; measured sweeps show it).
    """

    mu: float = _f("1/(s*V)", 0.0, doc="filament growth rate per volt")
    v_h: float = _f("V", 0.0, 100.0, doc="drift-onset voltage")
    alpha: float = _f("", 0.0, 10.0, lo_open=True, doc="gap regulariser")
    beta: float = _f("1/s", 0.0, doc="filament-to-residue transfer rate")
    gamma1: float = _f("1/s", 0.0, doc="filament dissolution rate")
    gamma2: float = _f("1/s", 0.0, doc="residue decay rate")
    lam: float = _f("", 0.0, 100.0, lo_open=True, doc="resistance-law steepness lambda")
    r_on: float = _f("ohm", 0.0, lo_open=True, doc="ON resistance")
    r_off: float = _f("ohm", 0.0, lo_open=True, doc="OFF resistance")
    v_h_reverse_shift: float = _f("V", -100.0, 100.0, default=0.0,
                                  doc="drift onset for negative V_m minus v_h (symmetric devices)")
    mu_reverse_factor: float = _f("", 0.0, lo_open=True, default=1.0,
                                  doc="growth rate for negative V_m over mu (symmetric devices)")
    polarity: str = "asymmetric"

    def _check_relations(self):
        checks.choice("memristor.polarity", self.polarity, ("asymmetric", "symmetric"))
        shift, v_h = self.v_h_reverse_shift, self.v_h
        if not isinstance(shift, jax.core.Tracer) and not isinstance(v_h, jax.core.Tracer):
            if self.polarity == "asymmetric" and np.any(np.asarray(shift) != 0):
                raise ParameterError(f"memristor.v_h_reverse_shift = {float(np.max(np.abs(shift))):g} V: only a "
                                     "symmetric device has a reverse drift onset; allowed 0 for polarity 'asymmetric'")
            factor = self.mu_reverse_factor
            if (self.polarity == "asymmetric" and not isinstance(factor, jax.core.Tracer)
                    and np.any(np.asarray(factor) != 1)):
                raise ParameterError(f"memristor.mu_reverse_factor = {float(np.max(factor)):g}: only a symmetric "
                                     "device has a reverse growth rate; allowed 1 for polarity 'asymmetric'")
            if np.any(np.asarray(v_h) + np.asarray(shift) < 0):
                raise ParameterError(f"memristor.v_h_reverse_shift = {float(np.min(shift)):g} V makes the reverse "
                                     f"drift onset negative: allowed [-v_h, 100] V = [{-float(np.max(v_h)):g}, 100] V")
        if not isinstance(self.r_on, jax.core.Tracer) and not isinstance(self.r_off, jax.core.Tracer):
            if np.any(np.asarray(self.r_off) <= np.asarray(self.r_on)):
                raise ParameterError(
                    f"memristor.r_off = {format_quantity(float(np.min(self.r_off)), 'Ohm')} must exceed "
                    f"memristor.r_on = {format_quantity(float(np.max(self.r_on)), 'Ohm')}: "
                    "allowed r_off in (r_on, inf) Ohm"
                )


@dataclass(frozen=True)
class Noise(_Record):
    """Stochasticity of the memristor (docs/model.md §3.4, §3.10).

    ``n_eff``: effective number of Ag quanta of the chemical-Langevin noise (``inf`` = none).
    ``sigma_d2d_ln_mu`` / ``sigma_c2c_ln_mu``: standard deviation of ``ln mu`` from device to
    device (drawn once per neuron) and from cycle to cycle (redrawn at every DM turn-on).
    Spreads are median-preserving: the preset's ``mu`` is the median device.
    """

    n_eff: float = _f("", 0.0, lo_open=True, doc="inf means deterministic", default=INF, allow_inf=True)
    sigma_d2d_ln_mu: float = _f("", 0.0, 5.0, default=0.0)
    sigma_c2c_ln_mu: float = _f("", 0.0, 5.0, default=0.0)


@dataclass(frozen=True)
class EKV(_Record):
    """Long-channel EKV n-MOSFET, continuous from weak to strong inversion (docs/model.md §3.7).

    ``I_D = I_spec [ln²(1+e^{V_P/2U_T}) - ln²(1+e^{(V_P-V_D)/2U_T})](1 + lambda_clm V_D)``,
    ``V_P = (V_G - v_t0)/n``, ``I_spec = 2 n beta U_T²``, ``U_T = k_B T/q``. In strong
    inversion and saturation this is ``beta/(2n) (V_G - v_t0)²``, i.e. ``K = beta/(2n)``.
    """

    v_t0: float = _f("V", -5.0, 5.0, doc="threshold voltage")
    n: float = _f("", 1.0, 5.0, doc="slope factor")
    beta: float = _f("A/V^2", 0.0, lo_open=True, doc="mu C_ox W/L")
    lambda_clm: float = _f("1/V", 0.0, 10.0, default=0.0, doc="channel-length modulation")
    temperature: float = _f("K", 0.0, 1000.0, lo_open=True, default=300.0)

    @property
    def threshold(self):
        return self.v_t0


@dataclass(frozen=True)
class SquareLaw(_Record):
    """Square-law (SPICE level-1-like) n-MOSFET: ``K (V_G - v_t)²`` in saturation, zero below threshold."""

    v_t: float = _f("V", -5.0, 5.0, doc="threshold voltage")
    k: float = _f("A/V^2", 0.0, lo_open=True, doc="K = kp/2")
    lambda_clm: float = _f("1/V", 0.0, 10.0, default=0.0)

    @property
    def threshold(self):
        return self.v_t


@dataclass(frozen=True)
class Circuit(_Record):
    """Passive elements and supply of the 1M1T1R neuron (docs/model.md §2.1)."""

    c_g: float = _f("F", 0.0, lo_open=True, doc="gate (membrane) capacitance")
    r_c: float = _f("ohm", 0.0, lo_open=True, doc="control resistor, gate to ground")
    r_l: float = _f("ohm", 0.0, lo_open=True, doc="drain load resistor")
    v_dd: float = _f("V", 0.0, 100.0, lo_open=True, doc="drain supply")
    c_l: float = _f("F", 0.0, default=0.0, doc="drain load capacitance (0 = quasi-static drain)")


Transistor = Union[EKV, SquareLaw]


@dataclass(frozen=True)
class NeuronParams:
    """All parameters of one (or, with array fields, many) 1M1T1R neurons."""

    memristor: Memristor
    transistor: Transistor
    circuit: Circuit
    noise: Noise = field(default_factory=Noise)

    def to_dict(self) -> dict[str, Any]:
        model = "ekv" if isinstance(self.transistor, EKV) else "square"
        return {
            "memristor": self.memristor.to_dict(),
            "transistor": {"model": model, **self.transistor.to_dict()},
            "circuit": self.circuit.to_dict(),
            "noise": self.noise.to_dict(),
        }

    def deterministic(self) -> "NeuronParams":
        """The same neuron with every source of randomness switched off."""
        return dataclasses.replace(self, noise=Noise())


for _cls, _static, _sec in [(Memristor, ("polarity",), "memristor"), (Noise, (), "noise"), (EKV, (), "transistor"),
                            (SquareLaw, (), "transistor"), (Circuit, (), "circuit")]:
    _register(_cls, _static)
    _cls._section = _sec
jax.tree_util.register_dataclass(
    NeuronParams, data_fields=["memristor", "transistor", "circuit", "noise"], meta_fields=[]
)

SECTIONS = {"memristor": Memristor, "circuit": Circuit, "noise": Noise}
TRANSISTORS = {"ekv": EKV, "square": SquareLaw}

# short names accepted by --set and replace(); the dotted path is always accepted too
ALIASES = {
    "Rc": "circuit.r_c", "Cg": "circuit.c_g", "Rl": "circuit.r_l", "RL": "circuit.r_l",
    "VDD": "circuit.v_dd", "Vdd": "circuit.v_dd", "Cl": "circuit.c_l", "CL": "circuit.c_l",
    "mu": "memristor.mu", "Vh": "memristor.v_h", "V_h": "memristor.v_h", "alpha": "memristor.alpha",
    "beta": "memristor.beta", "gamma1": "memristor.gamma1", "gamma2": "memristor.gamma2",
    "lambda": "memristor.lam", "lam": "memristor.lam", "Ron": "memristor.r_on", "Roff": "memristor.r_off",
    "N_eff": "noise.n_eff", "Neff": "noise.n_eff", "n_eff": "noise.n_eff",
    "sigma_d2d": "noise.sigma_d2d_ln_mu", "sigma_c2c": "noise.sigma_c2c_ln_mu",
    "VT": "transistor.threshold", "Vt": "transistor.threshold", "polarity": "memristor.polarity",
}


def _names(keys) -> list[str]:
    return sorted((str(k) for k in keys))


def _require_table(data: Any, where: str, allowed: list[str]) -> None:
    if not isinstance(data, Mapping):
        raise ParameterError(f"{where}: expected a table of fields (name = value), got {type(data).__name__} "
                             f"{_short(data)}; allowed fields: {allowed}")


def _section_from_dict(cls, data: Any, where: str):
    _require_table(data, where, _names(f.name for f in dataclasses.fields(cls)))
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = _names(set(data) - set(known))
    if unknown:
        raise ParameterError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(known)}")
    kwargs = {}
    for name, value in data.items():
        f = known[name]
        if name in cls._static:
            kwargs[name] = value
        else:
            kwargs[name] = _coerce(f"{where}.{name}", value, f.metadata["unit"])
    missing = [n for n, f in known.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]  # type: ignore[misc]
    if missing:
        raise ParameterError(f"{where}: missing field(s) {missing}")
    return cls(**kwargs)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def from_dict(data: Mapping, *, where: str = "params") -> NeuronParams:
    """Build :class:`NeuronParams` from nested dicts of numbers (SI) or unit strings.

    ``data`` has the sections ``memristor``, ``transistor`` (with ``model = "ekv"`` or
    ``"square"``), ``circuit`` and optionally ``noise``, each a dict of field -> value
    (a number, a unit string, or a list of them per neuron, as :meth:`NeuronParams.to_dict`
    writes).

    Raises:
        ParameterError, UnitError: a missing or unknown section or field, a value of the
            wrong type, unit or range (the message names ``where.section.field``).
    """
    if not isinstance(data, Mapping):
        raise ParameterError(f"{where}: expected a table of sections, got {type(data).__name__} {_short(data)}")
    allowed = {"memristor", "transistor", "circuit", "noise"}
    unknown = _names(set(data) - allowed)
    if unknown:
        raise ParameterError(f"{where}: unknown section(s) {unknown}; allowed: {sorted(allowed)}")
    for section in ("memristor", "transistor", "circuit"):
        if section not in data:
            raise ParameterError(f"{where}: missing section [{section}]")
    _require_table(data["transistor"], f"{where}.transistor",
                   ["model", *_names(f.name for f in dataclasses.fields(EKV))])
    tr = dict(data["transistor"])
    model = checks.choice(f"{where}.transistor.model", tr.pop("model", "ekv"), sorted(TRANSISTORS))
    return NeuronParams(
        memristor=_section_from_dict(Memristor, data["memristor"], f"{where}.memristor"),
        transistor=_section_from_dict(TRANSISTORS[model], tr, f"{where}.transistor"),
        circuit=_section_from_dict(Circuit, data["circuit"], f"{where}.circuit"),
        noise=_section_from_dict(Noise, data.get("noise", {}), f"{where}.noise"),
    )


def resolve_name(params: NeuronParams, name: str) -> tuple[str, str]:
    """Map a user name (``"Rc"``, ``"circuit.r_c"``, ``"r_c"``) to (section, field)."""
    path = ALIASES.get(name, name)
    if path == "transistor.threshold":
        path = "transistor.v_t0" if isinstance(params.transistor, EKV) else "transistor.v_t"
    if "." in path:
        section, fname = path.split(".", 1)
    else:
        hits = [(s, path) for s in ("memristor", "transistor", "circuit", "noise")
                if path in {f.name for f in dataclasses.fields(getattr(params, s))}]
        if len(hits) != 1:
            raise ParameterError(
                f"unknown parameter {name!r}: use a dotted name such as 'circuit.r_c' or one of {sorted(ALIASES)}"
            )
        section, fname = hits[0]
    if section not in ("memristor", "transistor", "circuit", "noise"):
        raise ParameterError(f"unknown parameter section {section!r} in {name!r}")
    record = getattr(params, section)
    if fname not in {f.name for f in dataclasses.fields(record)}:
        raise ParameterError(
            f"unknown parameter {name!r}: {section} has fields {[f.name for f in dataclasses.fields(record)]}"
        )
    return section, fname


def replace(params: NeuronParams, **overrides: Any) -> NeuronParams:
    """A copy of ``params`` with fields overridden, e.g. ``replace(p, Rc="1 GOhm", mu=300)``.

    Names may be aliases (:data:`ALIASES`), dotted paths (``"circuit.r_c"``, pass via
    ``**{"circuit.r_c": ...}``) or bare field names that are unique across sections. Values
    are numbers (SI), unit strings, or per-neuron 1-D arrays (lists, NumPy or JAX arrays, SI).

    Raises:
        ParameterError, UnitError: an unknown name, or a value of the wrong type, unit,
            shape or range (naming the field, the value and what is allowed).
    """
    if not isinstance(params, NeuronParams):
        raise ParameterError(f"params = {_short(params)}: expected NeuronParams "
                             "(e.g. ionspike.presets.params('paper'))")
    sections: dict[str, dict[str, Any]] = {}
    for name, value in overrides.items():
        section, fname = resolve_name(params, name)
        record = getattr(params, section)
        f = next(f for f in dataclasses.fields(record) if f.name == fname)
        if fname not in type(record)._static:
            value = _coerce(f"{section}.{fname}", value, f.metadata["unit"])
        sections.setdefault(section, {})[fname] = value
    out = params
    for section, kw in sections.items():
        out = dataclasses.replace(out, **{section: dataclasses.replace(getattr(out, section), **kw)})
    return out


def repeat_neurons(params: NeuronParams, k: int) -> NeuronParams:
    """Each neuron of ``params`` ``k`` times, as consecutive copies: every per-neuron 1-D array
    repeated element-wise, scalars kept (a batch of ``k`` conditions per neuron)."""
    return jax.tree.map(lambda v: np.repeat(np.asarray(v), k) if np.ndim(v) == 1 else v, params)


def parse_assignments(items: list[str]) -> dict[str, str]:
    """Parse CLI ``--set name=value`` items into a dict, with a clear error for malformed ones.

    Raises:
        ParameterError: an item that is not ``NAME=VALUE`` (a string with a non-empty name
            before the first ``=``), or a name given twice.
    """
    if isinstance(items, str):
        items = [items]
    out: dict[str, str] = {}
    for item in items:
        if not isinstance(item, str) or "=" not in item:
            raise ParameterError(f"--set {item!r}: expected NAME=VALUE, e.g. Rc=250MOhm")
        k, v = (part.strip() for part in item.split("=", 1))
        if not k:
            raise ParameterError(f"--set {item!r}: the name before '=' is empty; expected NAME=VALUE, e.g. Rc=250MOhm")
        if k in out:
            raise ParameterError(f"--set {k} is given twice ({out[k]!r} and {v!r}); give each parameter once")
        out[k] = v
    return out
