"""How much three seeds decide a cell of ``learned_controller.py``: the no-rate methods and tuned
warmup-cosine on seeds 0-5 of a task, the ratio over seeds 0-2 (the recorded run's), 3-5 and
0-5, and per seed.

The recorded run's cell is the mean final training loss (the last tenth of the updates, each on
its own batch) of three seeds over tuned warmup-cosine's. On a task trained to memorisation the
last tenth's batches hold a few hard examples whose loss is 100x the others', and one seed can
decide the cell. The tuned peak is the recorded run's (``--peaks``); each task runs as it does
there (digits and charlm one seed after another, the others ``vmap``-ped).

Usage:
  python benchmarks/seed_spread.py [--tasks digits,deep_mlp] [--peaks 0.0316,0.01] [--seeds 6]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import learned_controller as lc  # the benchmark beside this

METHODS = ("learned", "learned (no horizon)", "learned, network off", "prodigy + warmup-cosine")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--tasks", default="digits,deep_mlp")
  parser.add_argument("--peaks", default="0.0316227766,0.01",
                      help="tuned warmup-cosine's peak of each task (the recorded run's)")
  parser.add_argument("--seeds", type=int, default=6)
  args = parser.parse_args()
  seeds = list(range(args.seeds))
  half = args.seeds // 2
  for name, peak in zip(args.tasks.split(","), [float(p) for p in args.peaks.split(",")]):
    lc.MODE = "map" if name in lc.SEQUENTIAL else "vmap"
    task, steps, start = lc.get_task(name), lc.STEPS[name], time.perf_counter()
    finals = {m: lc.runs(task, lambda lr, m=m: lc.build(m, lr, steps),
                         [peak if m == "warmup_cosine" else 0.0], seeds, steps)["final"][0]
              for m in ("warmup_cosine",) + METHODS}
    base = finals["warmup_cosine"]
    print(f"\n## {name} ({lc.MODE}, {time.perf_counter() - start:.0f} s): tuned warmup-cosine "
          f"at peak {peak:.3g}, per seed {np.round(base, 5).tolist()}")
    print(f"| method | seeds 0-{half - 1} | seeds {half}-{args.seeds - 1} | all | per seed |")
    print("|---|---:|---:|---:|---|")
    for m in METHODS:
      f = finals[m]
      print(f"| {m} | {f[:half].mean() / base[:half].mean():.2f} | "
            f"{f[half:].mean() / base[half:].mean():.2f} | {f.mean() / base.mean():.2f} | "
            f"{np.round(f / base, 2).tolist()} |", flush=True)


if __name__ == "__main__":
  main()
