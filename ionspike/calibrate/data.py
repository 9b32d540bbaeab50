"""Measured (or simulated) device data for calibration: containers, loaders, CSV writer.

Two kinds of data, both stored as float64 NumPy arrays in SI units (V, A, s), one row per
repetition:

* :class:`DCSweeps` -- quasi-static I-V sweeps, ``(n_sweeps, n_points)``;
* :class:`PulseTrials` -- current transients under a voltage pulse, ``(n_trials, n_samples)``.

Files are read by :func:`load_dc_sweeps` and :func:`load_pulse_trials`:

* ``.npz`` (read with ``allow_pickle=False``): arrays ``voltage_V``, ``current_A`` and
  ``time_s`` (optional for DC sweeps), each ``(rows, samples)``; a 1-D array is one row. DC
  sweeps may state the instrument's current compliance as a one-element ``compliance_A``.
* ``.csv`` with a header line (lines starting with ``#`` before it are comments; DC sweeps may
  state the compliance in one, ``# compliance_A = 1e-6``), one sample per row, in any column
  order; extra columns are ignored:

  - DC sweeps: ``sweep,voltage_V,current_A[,time_s]``
  - pulse trials: ``trial,time_s,voltage_V,current_A``

  Rows are grouped by the integer index column (``sweep`` / ``trial``), groups ordered by
  index, samples kept in file order; every group must have the same number of rows.

Every array is checked for finiteness and for unit sanity (:func:`check_units`): a value
that looks like mA, µA or mV instead of SI is refused rather than silently misread. The
loaders also audit the units sweep by sweep (:mod:`ionspike.calibrate.audit`): a sweep or trial
whose currents sit orders of magnitude apart from the others', or a clamp that is not the
stated compliance, is refused with the sweep numbers. A file that cannot be read (empty,
truncated, not an archive) raises :class:`DataError` naming it.
"""

from __future__ import annotations

import csv
import errno
import math
import os
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ionspike.errors import IonspikeError

#: Largest plausible current magnitude, A. A larger value almost certainly means the file
#: stores mA or µA (a diffusive memristor under test carries nA..mA).
MAX_CURRENT_A = 0.1
#: Largest plausible voltage magnitude, V. A larger value almost certainly means mV.
MAX_VOLTAGE_V = 50.0

#: File suffixes the loaders understand.
SUPPORTED_SUFFIXES = (".npz", ".csv")

DC_CSV_COLUMNS = ("sweep", "voltage_V", "current_A")  # plus optional "time_s"
PULSE_CSV_COLUMNS = ("trial", "time_s", "voltage_V", "current_A")


class DataError(IonspikeError, ValueError):
    """Measured data is malformed: wrong shape, NaN, missing column, non-SI units, ..."""


# --------------------------------------------------------------------------------------
# checks


def check_units(name: str, values, quantity: str) -> None:
    """Refuse ``values`` whose magnitude is implausible for SI ``quantity``.

    ``quantity`` is ``"current"`` (amperes: max ``|I|`` must be <= :data:`MAX_CURRENT_A`)
    or ``"voltage"`` (volts: max ``|V|`` must be <= :data:`MAX_VOLTAGE_V`). Non-finite
    values are ignored here (:func:`check_finite` reports them). Raises :class:`DataError`
    naming ``name``, the largest magnitude and the expected unit.
    """
    limits = {"current": (MAX_CURRENT_A, "A", "mA or µA", "amperes"),
              "voltage": (MAX_VOLTAGE_V, "V", "mV", "volts")}
    if quantity not in limits:
        raise DataError(f"check_units: quantity {quantity!r} unknown: allowed 'current', 'voltage'")
    limit, unit, looks, expected = limits[quantity]
    a = np.abs(np.asarray(values, dtype=np.float64))
    a = a[np.isfinite(a)]
    if a.size and a.max() > limit:
        raise DataError(
            f"{name}: largest magnitude is {a.max():.6g}, above {limit:g} {unit}: looks like "
            f"{looks} rather than {unit}; expected {expected} (SI)")


def check_compliance(value, name: str = "compliance") -> float:
    """A stated current compliance as a float, A: finite, > 0 and <= :data:`MAX_CURRENT_A`."""
    try:
        c = float(np.asarray(value, dtype=np.float64).reshape(-1)[0]) if np.size(value) == 1 else math.nan
    except (TypeError, ValueError):
        c = math.nan
    if not (math.isfinite(c) and 0.0 < c <= MAX_CURRENT_A):
        raise DataError(f"{name} = {value!r}: allowed one number in (0, {MAX_CURRENT_A:g}] A")
    return c


def check_finite(name: str, values) -> None:
    """Refuse NaN/inf in ``values``; the error gives the count and the first (row, column)."""
    a = np.asarray(values)
    bad = ~np.isfinite(a)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        where = first[0] if len(first) == 1 else first
        raise DataError(f"{name}: {int(bad.sum())} non-finite (NaN/inf) value(s), first at index {where}")


def _as_2d(name: str, values) -> np.ndarray:
    try:
        a = np.array(values, dtype=np.float64)  # a copy, so callers cannot mutate it later
    except (TypeError, ValueError):
        raise DataError(f"{name}: cannot be read as a float array") from None
    if a.ndim != 2:
        raise DataError(f"{name}: must be 2-D (rows, samples), got shape {a.shape} "
                        "(use np.atleast_2d for a single row)")
    return a


def _check_increasing(name: str, t: np.ndarray) -> None:
    bad = ~(np.diff(t, axis=1) > 0.0)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{name}: must be strictly increasing in every row; row {row} has "
                        f"t[{col + 1}] = {t[row, col + 1]:.9g} s <= t[{col}] = {t[row, col]:.9g} s")


def _validate(obj, fields: dict, row_word: str, sample_word: str, min_samples: int = 2) -> None:
    """Convert, check and freeze ``fields`` ({attribute: quantity or None}) of ``obj``."""
    shape = None
    for attr, quantity in fields.items():
        a = _as_2d(attr, getattr(obj, attr))
        if shape is None:
            shape = a.shape
            if a.shape[0] < 1:
                raise DataError(f"{attr}: needs at least 1 {row_word}, got shape {a.shape}")
            if a.shape[1] < min_samples:
                raise DataError(f"{attr}: needs at least {min_samples} {sample_word} per "
                                f"{row_word}, got shape {a.shape}")
        elif a.shape != shape:
            first = next(iter(fields))
            raise DataError(f"{attr}: shape {a.shape} differs from {first} shape {shape}")
        check_finite(attr, a)
        if quantity is not None:
            check_units(attr, a, quantity)
        a.setflags(write=False)
        object.__setattr__(obj, attr, a)


# --------------------------------------------------------------------------------------
# containers


@dataclass(frozen=True, eq=False)
class DCSweeps:
    """Quasi-static I-V sweeps.

    Attributes:
        voltage: applied voltage, V, signed, ``(n_sweeps, n_points)``.
        current: measured current, A, as measured (sign kept; features use ``|I|``).
        time: sample times, s, same shape, strictly increasing per sweep; ``None`` if the
            instrument did not record them.
        source: where the data came from (a file path, or ``"simulated"``).
        compliance: the current compliance the instrument was set to, A, if the file states it
            (``None``: not stated; fits then detect the clamp in the data).

    Arrays are stored as read-only float64 copies.
    """

    voltage: np.ndarray
    current: np.ndarray
    time: np.ndarray | None = None
    source: str = "simulated"
    compliance: float | None = None

    def __post_init__(self):
        fields = {"voltage": "voltage", "current": "current"}
        if self.time is not None:
            fields["time"] = None
        _validate(self, fields, "sweep", "points")
        if self.time is not None:
            _check_increasing("time", self.time)
        object.__setattr__(self, "source", str(self.source))
        if self.compliance is not None:
            object.__setattr__(self, "compliance", check_compliance(self.compliance))

    @property
    def n_sweeps(self) -> int:
        return int(self.voltage.shape[0])

    @property
    def n_points(self) -> int:
        return int(self.voltage.shape[1])


@dataclass(frozen=True, eq=False)
class PulseTrials:
    """Current transients under a voltage pulse, one row per trial.

    Attributes:
        time: sample times, s, ``(n_trials, n_samples)``, strictly increasing per trial.
        voltage: applied voltage, V, same shape.
        current: measured current, A, same shape, as measured (an instrument may report the
            current negative; features use ``|I|``).
        source: where the data came from (a file path, or ``"simulated"``).

    Arrays are stored as read-only float64 copies.
    """

    time: np.ndarray
    voltage: np.ndarray
    current: np.ndarray
    source: str = "simulated"

    def __post_init__(self):
        _validate(self, {"time": None, "voltage": "voltage", "current": "current"}, "trial", "samples")
        _check_increasing("time", self.time)
        object.__setattr__(self, "source", str(self.source))

    @property
    def n_trials(self) -> int:
        return int(self.time.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.time.shape[1])


# --------------------------------------------------------------------------------------
# loading


def _existing(path) -> Path:
    p = Path(path)
    if not p.is_file():
        what = "is not a file" if p.exists() else "not found"
        raise FileNotFoundError(errno.ENOENT, f"measured data file {what}", str(p))
    if p.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise DataError(f"{str(p)!r}: unknown file type {p.suffix!r}: supported "
                        + ", ".join(SUPPORTED_SUFFIXES))
    return p


def _read_npz(p: Path, required: tuple, optional: tuple = ()) -> dict:
    if p.stat().st_size == 0:
        raise DataError(f"{str(p)!r}: empty file (0 bytes), not a .npz archive")
    try:
        archive = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{str(p)!r}: not a readable .npz archive (truncated or not a NumPy archive: {exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{str(p)!r}: holds a single NumPy array, not a .npz archive of named arrays "
                        f"({', '.join(required)})")
    try:
        with archive as z:
            found = list(z.files)
            missing = [k for k in required if k not in found]
            if missing:
                raise DataError(f"{str(p)!r}: missing array(s) {', '.join(missing)}; the file "
                                f"holds {', '.join(found) or 'no arrays'} (required "
                                f"{', '.join(required)}" + (f"; optional {', '.join(optional)})"
                                                            if optional else ")"))
            out = {}
            for k in required + tuple(k for k in optional if k in found):
                try:
                    a = np.asarray(z[k], dtype=np.float64)
                except ValueError as exc:  # object arrays need pickle: refuse
                    raise DataError(f"{str(p)!r}: array {k} cannot be read as numbers ({exc})") from None
                out[k] = np.atleast_2d(a) if a.ndim == 1 else a
    except DataError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise DataError(f"{str(p)!r}: not a readable .npz archive (truncated or corrupt: {exc})") from None
    for k, a in out.items():
        if k != "compliance_A" and a.ndim != 2:
            raise DataError(f"{str(p)!r}: array {k} must be 2-D (rows, samples), got shape {a.shape}")
    return out


_COMPLIANCE_COMMENT = re.compile(r"^\s*#\s*compliance_A\s*[=:]\s*(\S+)\s*$")


def _stated_compliance_csv(p: Path):
    """The value of a ``# compliance_A = ...`` comment line of ``p`` (before the header), or None."""
    with open(p, newline="") as fh:
        for line in fh:
            if not line.strip():
                continue
            if not line.lstrip().startswith("#"):
                return None
            match = _COMPLIANCE_COMMENT.match(line)
            if match:
                try:
                    return float(match.group(1))
                except ValueError:
                    raise DataError(f"{str(p)!r}: comment compliance_A = {match.group(1)!r} is not a number "
                                    "(write e.g. '# compliance_A = 1e-6', in A)") from None
    return None


def _read_csv(p: Path, index: str, required: tuple, optional: tuple = ()) -> dict:
    """Columns of ``p`` grouped by ``index`` into (groups, samples) arrays."""
    try:
        with open(p, newline="") as fh:
            lines = [(n, line) for n, line in enumerate(fh, start=1)
                     if line.strip() and not line.lstrip().startswith("#")]
    except UnicodeDecodeError:
        raise DataError(f"{str(p)!r}: not a text CSV file (cannot be decoded as text)") from None
    if not lines:
        raise DataError(f"{str(p)!r}: empty CSV file (expected a header: {','.join(required)})")
    rows = list(csv.reader(line for _, line in lines))
    header = [h.strip() for h in rows[0]]
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(f"{str(p)!r}: missing column(s) {', '.join(missing)}; header has "
                        f"{', '.join(header)} (required {', '.join(required)}"
                        + (f"; optional {', '.join(optional)})" if optional else ")"))
    wanted = list(required) + [c for c in optional if c in header]
    col = {c: header.index(c) for c in wanted}
    if len(rows) < 2:
        raise DataError(f"{str(p)!r}: header only, no data rows")
    data = {c: np.empty(len(rows) - 1) for c in wanted}
    for r, row in enumerate(rows[1:]):
        line_no = lines[r + 1][0]
        for c, j in col.items():
            try:
                data[c][r] = float(row[j])
            except IndexError:
                raise DataError(f"{str(p)!r} line {line_no}: {len(row)} field(s), column {c} "
                                f"is field {j + 1}") from None
            except ValueError:
                raise DataError(f"{str(p)!r} line {line_no}: column {c}: cannot read "
                                f"{row[j]!r} as a number") from None
    line_numbers = np.array([n for n, _ in lines[1:]])
    for c, a in data.items():
        bad = ~np.isfinite(a)
        if bad.any():
            raise DataError(f"{str(p)!r}: column {c} has {int(bad.sum())} non-finite (NaN/inf) "
                            f"value(s), first on line {line_numbers[np.argmax(bad)]}")
    idx = data.pop(index)
    if np.any(idx != np.round(idx)):
        k = int(np.argmax(idx != np.round(idx)))
        raise DataError(f"{str(p)!r} line {line_numbers[k]}: column {index} must be an integer, "
                        f"got {idx[k]!r}")
    groups, counts = np.unique(idx.astype(np.int64), return_counts=True)
    if np.any(counts != counts[0]):
        listing = ", ".join(f"{index} {g}: {n}" for g, n in zip(groups.tolist(), counts.tolist()))
        raise DataError(f"{str(p)!r}: every {index} needs the same number of rows; got {listing}")
    order = np.argsort(idx, kind="stable")  # by group, file order within a group
    return {c: a[order].reshape(groups.size, counts[0]) for c, a in data.items()}


def _unit_checks(p: Path, arrays: dict) -> None:
    for k, a in arrays.items():
        if k == "current_A":
            check_units(f"{p.name}: current_A", a, "current")
        elif k == "voltage_V":
            check_units(f"{p.name}: voltage_V", a, "voltage")


def load_dc_sweeps(path: str | os.PathLike) -> DCSweeps:
    """Read I-V sweeps from a ``.npz`` or ``.csv`` file (see the module docstring).

    Raises ``FileNotFoundError`` for a missing file and :class:`DataError` for an unknown
    suffix, an unreadable (empty, truncated) file, a missing array/column, unequal sweep
    lengths, NaN, non-SI magnitudes, or sweeps whose units disagree
    (:func:`ionspike.calibrate.audit.audit_dc_sweeps`).
    """
    from ionspike.calibrate.audit import audit_dc_sweeps

    p = _existing(path)
    if p.suffix.lower() == ".npz":
        arrays = _read_npz(p, ("voltage_V", "current_A"), ("time_s", "compliance_A"))
        stated = arrays.pop("compliance_A", None)
    else:
        arrays = _read_csv(p, "sweep", DC_CSV_COLUMNS, ("time_s",))
        stated = _stated_compliance_csv(p)
    _unit_checks(p, arrays)
    try:
        sweeps = DCSweeps(voltage=arrays["voltage_V"], current=arrays["current_A"], time=arrays.get("time_s"),
                          source=str(p),
                          compliance=None if stated is None else check_compliance(stated, "compliance_A"))
        audit_dc_sweeps(sweeps)
    except DataError as exc:
        raise DataError(f"{str(p)!r}: {exc}") from None
    return sweeps


def load_pulse_trials(path: str | os.PathLike) -> PulseTrials:
    """Read pulse transients from a ``.npz`` or ``.csv`` file (see the module docstring).

    Raises ``FileNotFoundError`` for a missing file and :class:`DataError` for an unknown
    suffix, an unreadable (empty, truncated) file, a missing array/column, unequal trial
    lengths, NaN, non-increasing time, non-SI magnitudes, or trials whose units disagree
    (:func:`ionspike.calibrate.audit.audit_pulse_trials`).
    """
    from ionspike.calibrate.audit import audit_pulse_trials

    p = _existing(path)
    if p.suffix.lower() == ".npz":
        arrays = _read_npz(p, ("time_s", "voltage_V", "current_A"))
    else:
        arrays = _read_csv(p, "trial", PULSE_CSV_COLUMNS)
    _unit_checks(p, arrays)
    try:
        trials = PulseTrials(time=arrays["time_s"], voltage=arrays["voltage_V"], current=arrays["current_A"],
                             source=str(p))
        audit_pulse_trials(trials)
    except DataError as exc:
        raise DataError(f"{str(p)!r}: {exc}") from None
    return trials


# --------------------------------------------------------------------------------------
# writing


def write_csv(obj: DCSweeps | PulseTrials, path: str | os.PathLike) -> Path:
    """Write ``obj`` as CSV in the layout the loaders read (exact float round trip).

    DC sweeps: ``sweep,voltage_V,current_A[,time_s]`` (a stated compliance as the comment line
    ``# compliance_A = ...``); pulse trials: ``trial,time_s,voltage_V,current_A``. The file is
    written atomically. Returns the path.
    """
    from ionspike.io import atomic_write

    if isinstance(obj, DCSweeps):
        names = ["sweep", "voltage_V", "current_A"]
        cols = [obj.voltage, obj.current]
        if obj.time is not None:
            names.append("time_s")
            cols.append(obj.time)
    elif isinstance(obj, PulseTrials):
        names = ["trial", "time_s", "voltage_V", "current_A"]
        cols = [obj.time, obj.voltage, obj.current]
    else:
        raise DataError(f"write_csv: expected DCSweeps or PulseTrials, got {type(obj).__name__}")
    rows, samples = cols[0].shape
    index = np.repeat(np.arange(rows), samples)
    table = np.column_stack([index] + [c.reshape(-1) for c in cols])
    fmt = ["%d"] + ["%.17g"] * len(cols)

    header = ",".join(names)
    if isinstance(obj, DCSweeps) and obj.compliance is not None:
        header = f"# compliance_A = {obj.compliance!r}\n" + header

    def write(tmp: Path) -> None:
        np.savetxt(tmp, table, fmt=fmt, delimiter=",", header=header, comments="")

    return atomic_write(Path(path), write)
