"""Writing results: atomic file writes, so nothing is ever left half-written."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import xarray as xr

from ionspike.errors import ParameterError


def prepare_out_dir(out: str | Path) -> Path:
    """Create ``out`` as a directory (parents too); refuse a path that is a file or unwritable."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ParameterError(f"--out {str(path)!r} is an existing file: allowed a directory path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ParameterError(f"--out {str(path)!r} cannot be created: {exc.strerror}") from None
    if not os.access(path, os.W_OK):
        raise ParameterError(f"--out {str(path)!r} is not writable")
    return path


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` then rename onto ``path`` (same directory, atomic on POSIX)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def jsonable(data: Any) -> Any:
    """Nested data with NumPy scalars made Python and non-finite floats made JSON-safe
    (NaN -> null, inf -> "inf")."""
    import math

    import numpy as np

    if isinstance(data, dict):
        return {str(k): jsonable(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [jsonable(v) for v in data]
    if isinstance(data, np.ndarray):
        return jsonable(data.tolist())
    if isinstance(data, np.generic):
        data = data.item()
    if isinstance(data, float) and not math.isfinite(data):
        return None if math.isnan(data) else ("inf" if data > 0 else "-inf")
    return data


def write_json(path: str | Path, data: Any) -> Path:
    return atomic_write(path, lambda p: p.write_text(json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n"))


def write_netcdf(path: str | Path, ds: xr.Dataset) -> Path:
    return atomic_write(path, lambda p: ds.to_netcdf(p, engine="netcdf4"))


def read_netcdf(path: str | Path) -> xr.Dataset:
    with xr.open_dataset(path, engine="netcdf4") as ds:
        return ds.load()
