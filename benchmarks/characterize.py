"""Wall time of `ionspike characterize` on default settings (target: <= 5 minutes on 2 cores).

One command:  python benchmarks/characterize.py [--preset paper]

Runs the real command line in a temporary folder and prints the total and per-protocol
seconds (as recorded by the command in metrics.json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

TARGET_S = 300.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="paper")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "ionspike.cli", "characterize", "--preset", args.preset,
                               "--out", d], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stderr)
            return proc.returncode
        seconds = json.load(open(os.path.join(d, "metrics.json")))["run"]["seconds"]
    print(f"ionspike characterize --preset {args.preset}: {wall:.1f} s wall on {os.cpu_count()} cores "
          f"(target <= {TARGET_S:.0f} s: {'met' if wall <= TARGET_S else 'MISSED'}; ratio {wall / TARGET_S:.2f})")
    for name, s in seconds.items():
        print(f"  {name:22s} {s:7.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
