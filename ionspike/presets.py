"""Named presets: TOML files of parameters with unit strings (ionspike/presets/*.toml).

A preset file has the sections ``[memristor]``, ``[transistor]``, ``[circuit]``,
``[noise]`` (see :mod:`ionspike.params`) and optionally ``[defaults]`` (``dt``,
``pulse`` or ``dc``, ``duration``: what the CLI uses when the user gives nothing).
``extends = "paper"`` inherits another preset and overrides only what it lists.
Users pass their own file anywhere a preset name is accepted.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ionspike.errors import PresetError
from ionspike.params import NeuronParams, from_dict, replace
from ionspike.units import parse_quantity

_DIR = resources.files("ionspike") / "presets"


@dataclass(frozen=True)
class Preset:
    """A named parameter set and the defaults that go with it."""

    name: str
    description: str
    params: NeuronParams
    dt: float | None = None                 # s, recommended step
    defaults: dict[str, str] = field(default_factory=dict)  # raw strings: pulse, dc, duration
    source: str = ""


def names() -> list[str]:
    """Names of the built-in presets."""
    return sorted(p.name[:-5] for p in _DIR.iterdir() if p.name.endswith(".toml"))


def _read(name_or_path: str | Path, _seen: tuple = ()) -> tuple[dict, str]:
    text_path = str(name_or_path)
    if text_path.endswith(".toml") or "/" in text_path or Path(text_path).suffix:
        path = Path(text_path)
        if not path.is_file():
            raise PresetError(f"preset file {text_path!r} does not exist")
        raw, source = path.read_text(), str(path)
    else:
        if text_path not in names():
            raise PresetError(f"unknown preset {text_path!r}; built-in presets: {names()} (or give a .toml path)")
        raw, source = (_DIR / f"{text_path}.toml").read_text(), f"ionspike/presets/{text_path}.toml"
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"preset {source}: invalid TOML: {exc}") from None
    parent = data.pop("extends", None)
    if parent is not None:
        if parent in _seen:
            raise PresetError(f"preset {source}: circular 'extends' chain {_seen + (parent,)}")
        if parent.endswith(".toml") and not Path(parent).is_absolute() and source != f"ionspike/presets/{text_path}.toml":
            parent = str(Path(source).parent / parent)  # a file extends a file beside it
        base, _ = _read(parent, _seen + (text_path,))
        base.pop("name", None)          # a child is never labelled with its parent's name
        base.pop("description", None)
        data = _merge(base, data)
    return data, source


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    stim = {"pulse", "dc"} & set(over.get("defaults", {}))
    for key in {"pulse", "dc"} - stim if stim else ():
        out.get("defaults", {}).pop(key, None)  # a child's stimulus replaces the parent's
    if over.get("transistor", {}).get("model") not in (None, base.get("transistor", {}).get("model")):
        out["transistor"] = dict(over["transistor"])  # a different model replaces the section
    return out


def load(name_or_path: str | Path = "paper", **overrides: Any) -> Preset:
    """Load a built-in preset by name or a user TOML file, with optional overrides.

    >>> p = load("paper", Rc="1 GOhm")
    >>> p.params.circuit.r_c
    1000000000.0
    """
    data, source = _read(name_or_path)
    name = data.pop("name", Path(str(name_or_path)).stem)
    description = data.pop("description", "")
    defaults = data.pop("defaults", {})
    unknown = sorted(set(defaults) - {"dt", "pulse", "dc", "duration"})
    if unknown:
        raise PresetError(f"preset {source}: unknown [defaults] key(s) {unknown}; allowed dt, pulse, dc, duration")
    params = from_dict(data, where=f"preset {name!r}")
    if overrides:
        params = replace(params, **overrides)
    dt = parse_quantity(defaults["dt"], "s", name=f"preset {name!r}: defaults.dt") if "dt" in defaults else None
    return Preset(name=name, description=description, params=params, dt=dt,
                  defaults={k: v for k, v in defaults.items() if k != "dt"}, source=source)


def params(name_or_path: str | Path = "paper", **overrides: Any) -> NeuronParams:
    """Shortcut: the :class:`NeuronParams` of a preset."""
    return load(name_or_path, **overrides).params
