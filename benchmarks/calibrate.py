"""Wall time and quality of `ionspike calibrate` on the shared measured data (target: <= 10 min each on 2 cores).

One command:  python benchmarks/calibrate.py [--data ../shared/data] [--only dc-sweeps|pulses]

Runs the real command line, default settings, in a temporary folder: the DC sweeps
(dm_symmetric_dc_sweeps.npz, symmetric device) and the pulse trials (dm_pulse_1V_20ms.npz, 22 kOhm
series resistor). Prints each wall time against the target, the KS distances and the verdict
written to fit.json (pass/fail with reasons). The tests guard against a hang only; this is where
the time target is measured. Exit status 0 when both ran (whatever the verdict), 1 if a run failed.
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
        status |= int(r["returncode"] != 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
