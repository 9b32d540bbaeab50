"""Named presets: TOML files of parameters with unit strings (ionspike/presets/*.toml).

A preset file has the sections ``[memristor]``, ``[transistor]``, ``[circuit]``,
``[noise]`` (see :mod:`ionspike.params`) and optionally ``[defaults]`` (``dt``,
``pulse`` or ``dc``, ``duration``: what the CLI uses when the user gives nothing).
``extends = "paper"`` inherits another preset (a built-in name, or a ``.toml`` path,
relative to the extending file's folder) and overrides only what it lists.
Users pass their own file anywhere a preset name is accepted; :func:`resolve` is the one
place that turns a name, a path, a :class:`Preset` or :class:`NeuronParams` into a Preset.
"""

from __future__ import annotations

import copy
import math
import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ionspike.errors import PresetError
from ionspike.params import NeuronParams, from_dict, replace
from ionspike.units import parse_quantity

_DIR = resources.files("ionspike") / "presets"

SECTIONS = ("memristor", "transistor", "circuit", "noise")
DEFAULT_KEYS = ("dt", "pulse", "dc", "duration")
TOP_LEVEL_KEYS = ("name", "description", "extends", *SECTIONS, "defaults")
MAX_EXTENDS_DEPTH = 16          # presets in one extends chain
MAX_FILE_BYTES = 1 << 20        # a preset file is a few hundred bytes; refuse anything huge


@dataclass(frozen=True)
class Preset:
    """A named parameter set and the defaults that go with it (``name == ""``: custom parameters)."""

    name: str
    description: str
    params: NeuronParams
    dt: float | None = None                 # s, recommended step
    defaults: dict[str, str] = field(default_factory=dict)  # raw strings: pulse, dc, duration
    source: str = ""


def names() -> list[str]:
    """Names of the built-in presets."""
    return sorted(p.name[:-5] for p in _DIR.iterdir() if p.name.endswith(".toml"))


def _is_path(text: str) -> bool:
    return text.endswith(".toml") or "/" in text or os.sep in text or bool(Path(text).suffix)


def _locate(ref: Any, folder: Path | None) -> tuple[str, str, str]:
    """(identity, TOML text, source label) of a preset reference.

    ``identity`` is canonical, so that one preset reached by different spellings (a relative
    and an absolute path, a symlink) is recognised in a cycle: ``builtin:NAME`` or the resolved
    absolute path of the file.
    """
    if not isinstance(ref, (str, os.PathLike)):
        raise PresetError(f"preset = {ref!r} ({type(ref).__name__}): expected a built-in preset name "
                          f"({', '.join(names())}) or the path of a .toml file")
    text = os.fspath(ref)
    if not isinstance(text, str):
        raise PresetError(f"preset = {ref!r}: expected a text path, got bytes")
    if not _is_path(text):
        if text not in names():
            raise PresetError(f"unknown preset {text!r}; built-in presets: {names()} (or give a .toml path)")
        return f"builtin:{text}", (_DIR / f"{text}.toml").read_text(encoding="utf-8"), f"ionspike/presets/{text}.toml"
    path = Path(text)
    if folder is not None and not path.is_absolute():
        path = folder / path      # a file extends a file beside it
    try:
        canonical = path.resolve()
        if not canonical.is_file():
            where = f" (relative to {folder})" if folder is not None and not Path(text).is_absolute() else ""
            raise PresetError(f"preset file {text!r}{where} does not exist or is not a file")
        if canonical.stat().st_size > MAX_FILE_BYTES:
            raise PresetError(f"preset file {str(path)!r} is larger than {MAX_FILE_BYTES} bytes: not a preset")
        raw = canonical.read_text(encoding="utf-8")
    except PresetError:
        raise
    except (OSError, ValueError, RuntimeError) as exc:  # permissions, NUL bytes, bad UTF-8, symlink loops
        raise PresetError(f"preset file {text!r} cannot be read: {exc}") from None
    return f"file:{canonical}", raw, str(path)


def _is_value(v: Any) -> bool:
    return isinstance(v, (str, int, float)) and not isinstance(v, bool)


def _check_document(data: dict, source: str) -> None:
    """Types of one preset file's keys, before anything is merged or parsed."""
    unknown = sorted(set(data) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise PresetError(f"preset {source}: unknown key(s) {unknown}; allowed: {', '.join(TOP_LEVEL_KEYS)}")
    for key in ("name", "description", "extends"):
        if key in data and not isinstance(data[key], str):
            raise PresetError(f"preset {source}: {key} = {data[key]!r} ({type(data[key]).__name__}): "
                              f"expected a string" + (" (a built-in preset name or a .toml path)"
                                                      if key == "extends" else ""))
    for key in (*SECTIONS, "defaults"):
        if key not in data:
            continue
        table = data[key]
        if not isinstance(table, dict):
            raise PresetError(f"preset {source}: {key} = {table!r} ({type(table).__name__}): expected a table "
                              f"[{key}] of name = value lines")
        for name, value in table.items():
            text_only = (key == "defaults" and name == "pulse") or name in ("model", "polarity")
            ok = isinstance(value, str) if text_only else _is_value(value)
            if not ok:
                allowed = "a string" if text_only else "a number (SI) or a quantity string such as '250 MOhm'"
                raise PresetError(f"preset {source}: {key}.{name} = {value!r} ({type(value).__name__}): "
                                  f"expected {allowed}")
    if "defaults" in data:
        keys = set(data["defaults"])
        unknown = sorted(keys - set(DEFAULT_KEYS))
        if unknown:
            raise PresetError(f"preset {source}: unknown [defaults] key(s) {unknown}; "
                              f"allowed {', '.join(DEFAULT_KEYS)}")
        if {"pulse", "dc"} <= keys:
            raise PresetError(f"preset {source}: [defaults] has both pulse and dc; give one stimulus")


def _read(ref: Any, folder: Path | None = None, chain: tuple[tuple[str, str], ...] = ()) -> tuple[dict, str]:
    """The merged document of ``ref`` and its ``extends`` ancestors, and ``ref``'s source label."""
    identity, raw, source = _locate(ref, folder)
    seen = [i for i, _ in chain]
    if identity in seen:
        loop = " -> ".join([s for _, s in chain[seen.index(identity):]] + [source])
        raise PresetError(f"preset {chain[-1][1]}: circular 'extends' chain {loop}")
    if len(chain) >= MAX_EXTENDS_DEPTH:
        raise PresetError(f"preset {source}: 'extends' chain longer than {MAX_EXTENDS_DEPTH} presets")
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"preset {source}: invalid TOML: {exc}") from None
    except RecursionError:
        raise PresetError(f"preset {source}: invalid TOML: nested too deeply") from None
    _check_document(data, source)
    parent = data.pop("extends", None)
    if parent is not None:
        parent_folder = Path(source).parent if identity.startswith("file:") else None
        base, _ = _read(parent, parent_folder, chain + ((identity, source),))
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


def _check_defaults(defaults: dict, name: str, source: str) -> float | None:
    """Parse the [defaults] at load time (a bad one fails here, not in the middle of a command);
    returns ``dt`` in s."""
    from ionspike.stimulus import parse_pulse

    where = f"preset {name!r}: defaults"
    values = {}
    for key in ("dt", "duration"):
        if key in defaults:
            values[key] = parse_quantity(defaults[key], "s", name=f"{where}.{key}")
            if not (math.isfinite(values[key]) and values[key] > 0):
                raise PresetError(f"preset {source}: defaults.{key} = {defaults[key]!r} is out of range: "
                                  "allowed (0, inf) s")
    if "dc" in defaults:
        dc = parse_quantity(defaults["dc"], "V", name=f"{where}.dc")
        if not math.isfinite(dc):
            raise PresetError(f"preset {source}: defaults.dc = {defaults['dc']!r}: allowed finite voltages")
    if "pulse" in defaults:
        parse_pulse(defaults["pulse"], name=f"{where}.pulse")
    return values.get("dt")


def load(name_or_path: str | os.PathLike = "paper", **overrides: Any) -> Preset:
    """Load a built-in preset by name or a user TOML file, with optional overrides.

    >>> p = load("paper", Rc="1 GOhm")
    >>> p.params.circuit.r_c
    1000000000.0

    Raises:
        PresetError: an unknown name, a missing/unreadable file, invalid TOML, a key of the
            wrong type, an ``extends`` cycle (naming the files).
        ParameterError, UnitError: a parameter value out of range or in the wrong unit.
    """
    data, source = _read(name_or_path)
    name = data.pop("name", Path(os.fspath(name_or_path)).stem)
    description = data.pop("description", "")
    defaults = data.pop("defaults", {})
    params = from_dict(data, where=f"preset {name!r}")
    if overrides:
        params = replace(params, **overrides)
    dt = _check_defaults(defaults, name, source)
    return Preset(name=name, description=description, params=params, dt=dt,
                  defaults={k: v for k, v in defaults.items() if k != "dt"}, source=source)


def resolve(preset: str | os.PathLike | Preset | NeuronParams) -> Preset:
    """The :class:`Preset` of anything accepted as a preset: a built-in name, a ``.toml`` path,
    a :class:`Preset` (returned as is) or :class:`NeuronParams` (a custom preset: ``name`` "",
    no recommended ``dt``, no defaults).

    Raises:
        PresetError: a value of another type, or what :func:`load` raises.
    """
    if isinstance(preset, Preset):
        return preset
    if isinstance(preset, NeuronParams):
        return Preset(name="", description="", params=preset)
    if isinstance(preset, (str, os.PathLike)):
        return load(preset)
    raise PresetError(f"params = {preset!r} ({type(preset).__name__}): expected NeuronParams, a Preset, "
                      f"a built-in preset name ({', '.join(names())}) or a .toml path")


def params(name_or_path: str | os.PathLike = "paper", **overrides: Any) -> NeuronParams:
    """Shortcut: the :class:`NeuronParams` of a preset."""
    return load(name_or_path, **overrides).params
