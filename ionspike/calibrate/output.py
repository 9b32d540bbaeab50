"""Write a calibration: ``preset.toml`` (loadable by every command), ``fit.json`` and the data the
figures are drawn from (``curves.json``). Files are written atomically; ``fit.json`` last, so
its presence marks a complete calibration."""

from __future__ import annotations

import datetime
import math
from pathlib import Path

import numpy as np
import tomli_w

import ionspike
from ionspike import io
from ionspike.calibrate.data import DCSweeps, PulseTrials
from ionspike.calibrate.result import Fit
from ionspike.params import NeuronParams

MAX_EXAMPLES = 12  # example sweeps/trials kept per side for the overlay figures


def preset_toml(params: NeuronParams, *, name: str, description: str, defaults: dict | None = None) -> str:
    """A preset file for ``params``: every section in SI numbers (``inf`` as a string)."""
    data: dict = {"name": name, "description": description}
    for section, values in params.to_dict().items():
        data[section] = {k: (("inf" if v > 0 else "-inf") if isinstance(v, float) and math.isinf(v) else v)
                         for k, v in values.items()}
    if defaults:
        data["defaults"] = dict(defaults)
    return tomli_w.dumps(data)


def _median_log_curve(x: np.ndarray, i: np.ndarray) -> tuple[list, list]:
    """Per-point median of |V| and of log10 |I| over sweeps (points aligned by index)."""
    return np.median(np.abs(x), axis=0).tolist(), np.median(np.log10(np.abs(i) + 1e-30), axis=0).tolist()


def curves(fit: Fit) -> dict:
    """The traces the figures overlay: example measured and simulated sweeps/trials and median curves."""
    out: dict = {"kind": fit.kind}
    for side, d in (("measured", fit.measured_data), ("simulated", fit.simulated_data)):
        if d is None:
            continue
        k = min(MAX_EXAMPLES, d.current.shape[0])
        pick = np.linspace(0, d.current.shape[0] - 1, k).astype(int)
        if isinstance(d, DCSweeps):
            out[side] = {"voltage_V": d.voltage[pick].tolist(), "current_A": np.abs(d.current[pick]).tolist()}
            medians = _median_log_curve(d.voltage, d.current)
            out[side]["median_abs_voltage_V"], out[side]["median_log10_current"] = medians
        elif isinstance(d, PulseTrials):
            step = max(1, d.time.shape[1] // 2000)   # keep about 2000 samples per trace
            out[side] = {"time_s": d.time[pick, ::step].tolist(), "voltage_V": d.voltage[pick, ::step].tolist(),
                         "current_A": np.abs(d.current[pick, ::step]).tolist()}
    return out


def write(fit: Fit, out: str | Path, *, source: str, base: str, command: str = "",
          defaults: dict | None = None) -> Path:
    """Write ``out/preset.toml``, ``out/curves.json`` and ``out/fit.json``; return ``out``."""
    out_dir = io.prepare_out_dir(out)
    date = datetime.date.today().isoformat()
    description = (f"Calibrated by ionspike {ionspike.__version__} ({fit.kind}) from {source} on {date}; "
                   f"transistor and circuit from preset {base!r}")
    text = preset_toml(fit.params, name=out_dir.name or "calibrated", description=description, defaults=defaults)
    io.atomic_write(out_dir / "preset.toml", lambda p: p.write_text(text))
    io.write_json(out_dir / "curves.json", curves(fit))
    summary = fit.summary()
    summary.update({"source": source, "base_preset": base, "command": command,
                    "ionspike_version": ionspike.__version__, "date": date})
    io.write_json(out_dir / "fit.json", summary)
    return out_dir
