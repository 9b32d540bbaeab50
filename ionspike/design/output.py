"""Write a design: ``design.json`` (targets wanted / achieved / pass, the chosen values with units, the
search history, the sensitivity), ``preset.toml`` (usable wherever a preset is), ``sensitivity.csv``
and ``design.png`` (each target's accepted interval and the achieved value), all inside the output
folder and written atomically. The figure is drawn from the saved ``design.json``."""

from __future__ import annotations

import csv
import io as _stdio
import json
from pathlib import Path

from ionspike import io
from ionspike.calibrate.output import preset_toml
from ionspike.design.measure import chosen_params
from ionspike.design.spec import DesignSpec


def write(spec: DesignSpec, design: dict, out: Path, *, command: str = "") -> None:
    params = chosen_params(spec, [v["value"] for v in design["variables"]])
    chosen = ", ".join(f"{v['name']} = {v['value']:.4g} {v['unit']}" for v in design["variables"])
    text = preset_toml(params, name=spec.name,
                       description=(f"made by ionspike design from targets ({spec.description or spec.name}); "
                                    f"base {spec.base_name}; {chosen}; {design['passed']}/{design['total']} "
                                    "targets met"))
    io.atomic_write(out / "preset.toml", lambda tmp: tmp.write_text(text))
    buf = _stdio.StringIO()
    names = [v["name"] for v in design["variables"]]
    w = csv.writer(buf)
    w.writerow(["target"] + [f"dln(target)/dln({n})" for n in names])
    for label, row in design["sensitivity"].items():
        w.writerow([label] + ["" if row[n] is None else f"{row[n]:.4g}" for n in names])
    io.atomic_write(out / "sensitivity.csv", lambda tmp: tmp.write_text(buf.getvalue()))
    io.write_json(out / "design.json", {"name": spec.name, "description": spec.description, "base": spec.base_name,
                                        "seed": spec.seed, "command": command, "targets_file": spec.source,
                                        **design})
    plot(json.loads((out / "design.json").read_text()), out / "design.png")


def plot(design: dict, path: Path) -> None:
    """Each target's accepted interval (bar) and the achieved value (dot; ngspice as a cross when
    checked), on a log axis normalised by the interval's reference value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = design["targets"]
    fig, ax = plt.subplots(figsize=(7.0, 0.7 + 0.55 * len(rows)))
    for k, t in enumerate(rows):
        lo, hi = t["wanted"]["low"], t["wanted"]["high"]
        ref = next(v for v in (lo, hi) if v not in (None, 0))
        lo_n = (lo / ref) if lo is not None else 1e-3
        hi_n = (hi / ref) if hi is not None else 1e3
        ax.plot([max(lo_n, 1e-3), min(hi_n, 1e3)], [k, k], lw=8, color="#cfe3cf", solid_capstyle="butt")
        if t["achieved"] is not None and t["achieved"] > 0:
            ax.plot(t["achieved"] / ref, k, "o", color="tab:green" if t["pass"] else "tab:red")
        if t.get("ngspice") is not None and t["ngspice"] > 0:
            ax.plot(t["ngspice"] / ref, k, "x", color="k")
    ax.set_xscale("log")
    ax.set_yticks(range(len(rows)), [t["target"] for t in rows], fontsize=8)
    ax.set_xlabel("value / target bound\n(band: accepted; dot: achieved, green if met; x: ngspice)", fontsize=9)
    ax.set_title(f"{design['name']}: {design['passed']}/{design['total']} targets met", fontsize=10)
    fig.tight_layout()
    io.save_figure(fig, path)
    plt.close(fig)
