"""How much a task's own tuned warmup-cosine moves when its peak moves a little: the noise floor
under ``learned_controller.py``'s per-seed ratios.

Runs AdamW under Optax's warmup-cosine (10% warmup) at the task's tuned peak times 0.8 … 1.25,
on the same seeds, batches and initialisations as ``learned_controller.py``, and prints each
peak's final training loss (the last 10% of updates) over the tuned peak's, seed by seed::

    python benchmarks/peak_noise.py --task deep_mlp --peak 0.01 --seeds 6
"""

from __future__ import annotations

import numpy as np

import learned_controller as bench

FACTORS = (0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25)


def main() -> None:
  args, task, steps, seeds = bench.one_task_args(__doc__, seeds=6)
  peaks = [args.peak * f for f in FACTORS]
  out = bench.runs(task, lambda lr: bench.build("warmup_cosine", lr, steps), peaks, seeds,
                   steps)
  ref = out["final"][FACTORS.index(1.0)]
  print(f"# {args.task}, {steps} updates, seeds {seeds[0]}..{seeds[-1]}; tuned peak {args.peak:g}: "
        f"final training loss per seed {', '.join(f'{x:.3g}' for x in ref)}")
  print("| peak | per-seed ratio to the tuned peak | geometric mean | worst | within 1.10× |")
  print("|---|---|---:|---:|---:|")
  for f, final in zip(FACTORS, out["final"]):
    r = final / ref
    print(f"| {f:g} × tuned | {', '.join(f'{x:.2f}' for x in r)} | "
          f"{bench.seed_by_seed(r):.2f} | {r.max():.2f} | {np.mean(r <= 1.10):.0%} |")


if __name__ == "__main__":
  main()
