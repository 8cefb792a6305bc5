"""What the spike guard does for adaptive schedules started 10x too high.

For each task the peak of an AdamW warmup-cosine schedule is tuned on a grid
(one tuning seed, the lowest final training loss; the grid is wide enough that
the best is not at its edge, or the table says so). Then each adaptive method
starts at ``--start`` times that tuned peak (default 10: too high), once with
the spike guard off (``guard=False``) and once on (the default), 3 seeds with
the same data and initialisation for both (paired). The figure of merit is the
final training loss (the mean over the last evaluation chunk) divided by the
tuned warmup-cosine's, as in issue 9; lower is better, 1.0 = as good as tuned.
The guard's defaults (``guard_factor=4``, ``guard_cut=0.1``) were set by reasoning
about one bad minibatch against a divergence, not tuned on these tasks.

Usage:
  python benchmarks/spike_guard.py [--tasks digits,regression,charlm] [--seeds 3] [--start 10]
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import numpy as np
import optax

from lrjax import hypergradient, log_values
from lrjax.bench import tasks, unroll
from lrjax.schedules._base import build_preset

STEPS = {"digits": 300, "regression": 300, "charlm": 300}
EVAL_EVERY = {"digits": 25, "regression": 25, "charlm": 25}
GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
TUNING_SEED = 100
WEIGHT_DECAY = 1e-4
METHODS = ("reduce_on_plateau", "greedy", "window_decay", "hypergradient")


def adamw(lr):
  return optax.adamw(lr, weight_decay=WEIGHT_DECAY)


def build(method: str, steps: int, start: float, guard: bool):
  if method == "hypergradient":
    return hypergradient(adamw, init_value=start, hyper_lr=1e-7, guard=guard)
  schedule = build_preset(method, steps, start, guard=guard)
  return optax.inject_hyperparams(optax.adamw)(learning_rate=schedule,
                                               weight_decay=WEIGHT_DECAY)


def warmup_cosine(steps: int, peak: float):
  return optax.inject_hyperparams(optax.adamw)(
      learning_rate=optax.warmup_cosine_decay_schedule(0.0, peak, max(steps // 10, 1), steps),
      weight_decay=WEIGHT_DECAY)


def final_train_loss(result) -> float:
  loss = float(result.train_loss[-1])
  return loss if np.isfinite(loss) else float("inf")


def spikes_caught(result) -> int:
  """The spike guard's triggers in a run, read from its final optimizer state."""
  values = log_values(result.opt_state)
  return int(next(v for k, v in values.items() if k.endswith("num_spikes")))


def run(task, tx, steps, seed, every):
  return unroll.train(task, tx, steps, seed=seed, eval_every=every)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tasks", default="digits,regression,charlm")
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--start", type=float, default=10.0,
                      help="the starting LR as a multiple of the tuned peak")
  args = parser.parse_args()
  print(f"# jax {jax.__version__}, optax {optax.__version__}, backend {jax.default_backend()}, "
        f"{platform.machine()}; warmup-cosine grid {list(GRID)} (tuning seed {TUNING_SEED}); "
        f"start = {args.start:g} x tuned; {args.seeds} seeds, paired")
  rows = []
  for name in args.tasks.split(","):
    t0 = time.perf_counter()
    task = tasks.get_task(name)
    steps, every = STEPS[name], EVAL_EVERY[name]
    grid = {p: final_train_loss(run(task, warmup_cosine(steps, p), steps, TUNING_SEED, every))
            for p in GRID}
    tuned = min(grid, key=grid.get)
    edge = " (at the grid's edge)" if tuned in (GRID[0], GRID[-1]) else ""
    baseline = np.mean([final_train_loss(run(task, warmup_cosine(steps, tuned), steps, s, every))
                        for s in range(args.seeds)])
    start = args.start * tuned
    print(f"\ntask {name}: {steps} steps; tuned warmup-cosine peak {tuned:g}{edge}, final "
          f"training loss {baseline:.4f} (mean of {args.seeds} seeds); start {start:g}")
    print("| method | guard off: ratio to tuned (mean, worst) | guard on: ratio (mean, worst) | "
          "spikes caught (per seed) |")
    print("|---|---:|---:|---:|")
    for method in METHODS:
      ratios, caught = {}, []
      for guard in (False, True):
        r = []
        for s in range(args.seeds):
          result = run(task, build(method, steps, start, guard), steps, s, every)
          r.append(final_train_loss(result) / baseline)
          if guard:
            caught.append(spikes_caught(result))
        ratios[guard] = np.array(r)
      cells = [f"{np.mean(ratios[g]):.3g}, {np.max(ratios[g]):.3g}"
               if np.all(np.isfinite(ratios[g])) else
               f"diverged in {int(np.sum(~np.isfinite(ratios[g])))}/{args.seeds}" for g in
               (False, True)]
      print(f"| {method} | {cells[0]} | {cells[1]} | {', '.join(map(str, caught))} |")
      rows.append((name, method, ratios))
    print(f"({time.perf_counter() - t0:.0f} s)")
  for guard in (False, True):
    within = np.mean([np.mean(r[guard] <= 1.10) for _, _, r in rows])
    print(f"share of (task, method, seed) runs within 1.10x of tuned, guard "
          f"{'on' if guard else 'off'}: {within:.0%}")


if __name__ == "__main__":
  main()
