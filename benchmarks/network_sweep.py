"""The small hyper-parameter sweep behind each neuron model's training defaults, in one command.

    python benchmarks/network_sweep.py --out sweep            # resumable; --neurons 1m1t1r,lif,alif

Per neuron model: peak learning rate {1e-3, 3e-3, 1e-2} x upper-rate penalty weight {0, 10} on
MNIST-1D (128 hidden, li readout, 30 epochs with best-epoch selection, seed 0). The score is the
validation accuracy (the test set is reported, never used to choose). Prints one table and writes
``sweep.json``; the chosen pairs are ``ionspike.network.train.DEFAULT_LR`` / ``DEFAULT_RATE_WEIGHT``.
Everything else is each neuron model's default (the lower-rate penalty, ``DEFAULT_FLOOR_WEIGHT``, is
off for every model).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

LRS = (1e-3, 3e-3, 1e-2)
RATE_WEIGHTS = (0.0, 10.0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="sweep", help="folder for the runs and sweep.json")
    ap.add_argument("--neurons", default="1m1t1r,lif,alif")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--task", default="mnist1d")
    args = ap.parse_args(argv)
    from ionspike.io import write_json
    from ionspike.network import train as T

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for neuron in args.neurons.split(","):
        for lr in LRS:
            for rw in RATE_WEIGHTS:
                config = T.TrainConfig(task=args.task, neuron=neuron, hidden=128, epochs=args.epochs, lr=lr,
                                       rate_weight=rw, seed=0)
                folder = out / f"{neuron}_lr{lr:g}_rw{rw:g}"
                done = folder / "result.json"
                if done.exists():
                    r = json.loads(done.read_text())
                else:
                    r = T.result_summary(T.train(config, folder))
                    write_json(done, r)
                row = {"neuron": neuron, "lr": lr, "rate_weight": rw, "val_accuracy": r["val_accuracy"],
                       "test_accuracy": r["test_accuracy"], "best_epoch": r["best_epoch"], "seconds": r["seconds"]}
                rows.append(row)
                print(f"{neuron:7s} lr {lr:<6g} rate weight {rw:<4g} val {row['val_accuracy']:.4f} "
                      f"test {row['test_accuracy']:.4f} (epoch {row['best_epoch']}, {row['seconds']:.0f} s)", flush=True)
    best = {}
    for neuron in args.neurons.split(","):
        mine = [r for r in rows if r["neuron"] == neuron]
        best[neuron] = max(mine, key=lambda r: r["val_accuracy"])
        b = best[neuron]
        print(f"best {neuron}: lr {b['lr']:g}, rate weight {b['rate_weight']:g} (val {b['val_accuracy']:.4f}, "
              f"test {b['test_accuracy']:.4f})")
    write_json(out / "sweep.json", {"task": args.task, "epochs": args.epochs, "rows": rows, "best": best})
    return 0


if __name__ == "__main__":
    sys.exit(main())
