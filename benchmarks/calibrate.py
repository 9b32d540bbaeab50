"""Wall time and quality of `ionspike calibrate` on the shared measured data (target: <= 10 min each on 2 cores).

One command:  python benchmarks/calibrate.py [--data ../shared/data] [--only dc-sweeps|pulses]

Runs the real command line, default settings, in a temporary folder: the DC sweeps
(dm_symmetric_dc_sweeps.npz, symmetric device) and the pulse trials (dm_pulse_1V_20ms.npz, 22 kOhm
series resistor). Prints each wall time against the target, the KS distances and the verdict
written to fit.json (pass/fail with reasons), and checks the acceptance numbers of the fits on this
data (the DC sweeps: all 199 sweeps read, median threshold within 10 %, KS <= 0.2 for thresholds and
holds, per polarity the grid medians within one 6 mV step and the plain medians within one step,
the negative sweeps' higher onset found; the pulses: median delay within a factor 1.5, KS <= 0.35;
both: verdict passed). The test suite runs the pulse fit with --quick and reads the DC sweeps'
features; the default fits (~4 min for the DC sweeps on 2 idle cores) live here. Exit status 0
when every run finished and met its acceptance numbers, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 600.0   # the "<= 10 min on 2 cores", per calibration
RUNS = {
    "dc-sweeps": ("dm_symmetric_dc_sweeps.npz", ["--symmetric"]),
    "pulses": ("dm_pulse_1V_20ms.npz", ["--series-resistance", "22kOhm"]),
}


def _default_data() -> Path:
    env = os.environ.get("IONSPIKE_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def run(kind: str, data: Path, out: Path) -> dict:
    """Run one calibration through the CLI; return its wall time (s), exit status and fit.json."""
    name, extra = RUNS[kind]
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ionspike.cli", "calibrate", kind, str(data / name), *extra,
                           "--out", str(out)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    fit = json.loads((out / "fit.json").read_text()) if (out / "fit.json").is_file() else None
    return {"wall_s": wall, "returncode": proc.returncode, "stderr": proc.stderr, "fit": fit}


def report(kind: str, r: dict) -> list[str]:
    """Lines for one run: time against the target, KS distances, verdict."""
    wall = r["wall_s"]
    lines = [f"ionspike calibrate {kind}: {wall:.1f} s wall on {os.cpu_count()} cores (target <= {TARGET_S:.0f} s: "
             f"{'met' if wall <= TARGET_S else 'MISSED'}; ratio {wall / TARGET_S:.2f})"]
    fit = r["fit"]
    if r["returncode"] != 0 or fit is None:
        return lines + [f"  FAILED (exit {r['returncode']}):", *("    " + s for s in r["stderr"].splitlines()[-15:])]
    lines.append("  KS: " + ", ".join(f"{k} {v:.3f}" for k, v in fit["ks"].items()))
    v = fit.get("verdict")
    if v is not None:
        lines.append(f"  verdict: {'PASSED' if v['passed'] else 'FAILED'}")
        lines += [f"    {'ok  ' if c['passed'] else 'FAIL'}  {c['text']}" for c in v["checks"]]
        lines += [f"    note: {n}" for n in v.get("notes", [])]
    lines += [f"  note: {n}" for n in fit.get("notes", [])]
    return lines


def acceptance(kind: str, fit: dict) -> list[str]:
    """The acceptance numbers one fit misses (empty: all met)."""
    missed = []
    if not fit.get("verdict", {}).get("passed"):
        missed.append("verdict failed")
    if kind == "dc-sweeps":
        if len(fit["measured.vth_V"]) != 199:
            missed.append(f"{len(fit['measured.vth_V'])} measured thresholds read (the data holds 199 sweeps)")
        med = {n: (fit[f"measured.{n}.stats"]["median"], fit[f"simulated.{n}.stats"]["median"])
               for n in ("vth_V", "vhold_V")}
        if abs(med["vth_V"][1] - med["vth_V"][0]) > 0.10 * abs(med["vth_V"][0]):
            missed.append(f"median threshold {med['vth_V'][1]:.4f} V vs measured {med['vth_V'][0]:.4f} V (> 10 %)")
        missed += [f"KS {n} {fit['ks'][n]:.3f} > 0.2" for n in ("vth_V", "vhold_V") if fit["ks"][n] > 0.2]
        for side, d in fit["setup"].get("by_polarity", {}).items():
            for n in ("vth_V", "vhold_V"):
                if f"simulated_grid_median_{n}" not in d:
                    continue
                miss = d[f"simulated_grid_median_{n}"] - d[f"measured_grid_median_{n}"]
                if abs(miss) >= 0.006:
                    missed.append(f"{side} grid median {n} off by {miss * 1e3:+.1f} mV (limit one 6 mV step)")
                plain = d[f"simulated_median_{n}"] - d[f"measured_median_{n}"]
                if abs(plain) > 0.006 + 1e-9:
                    missed.append(f"{side} median {n} off by {plain * 1e3:+.1f} mV (limit one 6 mV step)")
        if not (fit["fitted"].get("v_h_reverse_shift", 0) > 0.05 and fit["fitted"].get("mu_reverse_factor", 0) > 1):
            missed.append("the negative sweeps' higher onset (reverse shift > 0.05 V, rate factor > 1) not found")
    else:
        ratio = fit["simulated.delay_s.stats"]["median_with_missing"] / fit["measured.delay_s.stats"]["median"]
        if not 1 / 1.5 <= ratio <= 1.5:
            missed.append(f"median delay ratio {ratio:.2f} (allowed 0.67-1.5)")
        if fit["ks"]["delay_s"] > 0.35:
            missed.append(f"KS delay {fit['ks']['delay_s']:.3f} > 0.35")
    return missed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=_default_data(), help="folder with the shared measured data")
    ap.add_argument("--only", choices=sorted(RUNS), help="run one calibration only")
    args = ap.parse_args(argv)
    missing = [RUNS[k][0] for k in RUNS if not (args.data / RUNS[k][0]).is_file()]
    if missing:
        print(f"measured data not found in {args.data}: {', '.join(missing)} (pass --data or set IONSPIKE_SHARED_DATA)")
        return 1
    status = 0
    for kind in ([args.only] if args.only else list(RUNS)):
        with tempfile.TemporaryDirectory() as d:
            r = run(kind, args.data, Path(d) / "out")
        print("\n".join(report(kind, r)), flush=True)
        missed = ["the run failed"] if r["returncode"] != 0 or r["fit"] is None else acceptance(kind, r["fit"])
        print(f"  acceptance: {'met' if not missed else 'MISSED: ' + '; '.join(missed)}", flush=True)
        status |= int(bool(missed))
    return status


if __name__ == "__main__":
    sys.exit(main())
