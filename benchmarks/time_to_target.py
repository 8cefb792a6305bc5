"""Which schedule trains fastest: steps and wall time to a target metric, and the final metric.

For each task, every schedule ``lrjax compare`` knows (all lrjax schedules and the Optax
baselines), trained with AdamW:

- fixed schedules (the pure lrjax schedules and ``optax.warmup_cosine_decay_schedule``) get their
  peak learning rate tuned on a small grid (--grid, one tuning seed, best final metric);
- adaptive ones (stateful lrjax schedules, window_search, hypergradient,
  ``optax.contrib.reduce_on_plateau``, ``schedule_free_adamw``, ``prodigy``) run at one default
  peak (--default-peak), as a user would run them untuned;
- then each runs on --seeds fresh seeds (different from the tuning seed).

Prints one Markdown table per task, best final metric first.

Usage:
  python benchmarks/time_to_target.py [--tasks digits,regression] [--seeds 3]
      [--grid 1e-3,3e-3,1e-2] [--default-peak 3e-3]
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import numpy as np

from lrjax.bench import runner, tasks, unroll

STEPS = {"digits": 400, "regression": 300, "charlm": 150}
FIXED_EXTRA = {"optax.warmup_cosine_decay_schedule"}
ADAPTIVE = {"reduce_on_plateau", "greedy", "window_decay", "window_search", "hypergradient",
            "optax.contrib.reduce_on_plateau", "optax.contrib.schedule_free_adamw",
            "optax.contrib.prodigy"}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tasks", default="digits,regression")
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--grid", default="1e-3,3e-3,1e-2")
  parser.add_argument("--default-peak", type=float, default=3e-3)
  parser.add_argument("--eval-every", type=int, default=25)
  args = parser.parse_args()
  grid = [float(g) for g in args.grid.split(",")]
  print(f"# jax {jax.__version__}, backend {jax.default_backend()}, {platform.machine()}; "
        f"peak grid {grid} for fixed schedules (tuning seed 100), adaptive at "
        f"{args.default_peak:g}; {args.seeds} seeds")
  for task_name in args.tasks.split(","):
    task = tasks.get_task(task_name)
    steps = STEPS[task_name]
    names = sorted(runner.optimizers(steps, 1.0))
    better = (lambda a, b: a > b) if task.higher_is_better else (lambda a, b: a < b)
    rows = []
    start = time.perf_counter()
    for name in names:
      adaptive = name in ADAPTIVE
      peak = args.default_peak
      if not adaptive:
        best = None
        for p in grid:
          r = unroll.train(task, runner.optimizers(steps, p)[name](), steps, seed=100,
                          eval_every=args.eval_every)
          if best is None or better(r.metric[-1], best[1]):
            best = (p, r.metric[-1])
        peak = best[0]
      results = [unroll.train(task, runner.optimizers(steps, peak)[name](), steps, seed=s,
                             eval_every=args.eval_every) for s in range(args.seeds)]
      finals = np.array([r.metric[-1] for r in results])
      hits = [runner.steps_to_target(r, task.target, task.higher_is_better) for r in results]
      times = []
      for r, h in zip(results, hits):
        if h is not None:
          times.append(r.wall_time * h / steps)
      rows.append((name, "default" if adaptive else "tuned", peak, finals.mean(), finals.std(),
                   [h for h in hits if h is not None], times, np.mean([r.wall_time for r in results])))
    rows.sort(key=lambda r: r[3], reverse=task.higher_is_better)
    print(f"\n## {task_name}: {task.metric} after {steps} steps; target {task.target:g} "
          f"({time.perf_counter() - start:.0f} s for this table)\n")
    print("| schedule | peak lr | final (mean ± std) | steps to target (reached) "
          "| time to target s | run s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, kind, peak, mean, std, hits, times, wall in rows:
      reached = f"{np.mean(hits):.0f} ({len(hits)}/{args.seeds})" if hits else f"— (0/{args.seeds})"
      ttt = f"{np.mean(times):.2f}" if times else "—"
      print(f"| {name} | {peak:g} ({kind}) | {mean:.4f} ± {std:.4f} | {reached} | {ttt} | "
            f"{wall:.2f} |", flush=True)


if __name__ == "__main__":
  main()
