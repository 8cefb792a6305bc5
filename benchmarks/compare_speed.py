"""`lrjax compare`'s programs: one per schedule (seeds and peaks inside) against one per run.

The anchor is the host loop `lrjax compare` ran before: `lrjax.bench.unroll.train` once per
(schedule, peak, seed), each call compiling its own chunk and evaluation. The same schedules,
seeds, peaks and steps run both ways in one process, side by side; the script prints each
way's wall time, the programs XLA compiled, and the largest difference between the two ways'
final training losses and test metrics (the same batches and keys: equal to float32 rounding
where a run is not chaotic).

Usage:
  python benchmarks/compare_speed.py [--task digits] [--steps 300] [--seeds 3]
      [--peaks 0.03] [--schedules constant,wsd,...] [--eval-every 25]
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import numpy as np

from lrjax.bench import runner, tasks, unroll


def host_loop(task, names, peaks, seeds, steps, eval_every):
  """Every run its own `unroll.train` (its own compiled programs), as before."""
  table = runner.builders(steps, evaluations=-(-steps // eval_every))
  out = {}
  for name in names:
    run_peaks = peaks[:1] if name in runner.PEAK_FREE else peaks
    out[name] = [[unroll.train(task, table[name](p), steps, s, eval_every) for s in range(seeds)]
                 for p in run_peaks]
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--task", default="digits")
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--peaks", default="0.03")
  parser.add_argument("--eval-every", type=int, default=25)
  parser.add_argument("--schedules", default=",".join(runner.DEFAULT_SCHEDULES))
  args = parser.parse_args()
  names = args.schedules.split(",")
  peaks = [float(p) for p in args.peaks.split(",")]
  task = tasks.get_task(args.task)
  print(f"# {platform.processor() or platform.machine()}, {jax.default_backend()}, "
        f"jax {jax.__version__}; task {args.task}, {len(names)} schedules x {len(peaks)} "
        f"peak(s) x {args.seeds} seeds x {args.steps} updates")
  rows = {}
  before = unroll.compilations()
  start = time.perf_counter()
  loop = host_loop(task, names, peaks, args.seeds, args.steps, args.eval_every)
  rows["host loop (unroll.train per run)"] = (time.perf_counter() - start,
                                              unroll.compilations() - before)
  before = unroll.compilations()
  start = time.perf_counter()
  summary = runner.run(task, names, args.steps, args.seeds, peaks, None, args.eval_every,
                       progress=False)
  rows["one program per schedule (lrjax compare)"] = (time.perf_counter() - start,
                                                      unroll.compilations() - before)
  diffs = {}
  for name in names:
    rel = []
    for p, runs in enumerate(loop[name]):
      peak = summary["by_peak"][name][p]
      rel += [abs(r.train_loss[-1] - peak["train_finals"][s]) / abs(r.train_loss[-1])
              for s, r in enumerate(runs)]
    diffs[name] = max(rel)
  anchor = rows["host loop (unroll.train per run)"][0]
  print("| way | wall s | programs compiled | time ÷ host loop |")
  print("|---|---:|---:|---:|")
  for way, (wall, compiled) in rows.items():
    print(f"| {way} | {wall:.1f} | {compiled} | {wall / anchor:.2f} |")
  print("largest relative difference of a final training loss between the two ways, by "
        "schedule: " + ", ".join(f"{n} {d:.1g}" for n, d in diffs.items()))
  print(np.round([summary["programs"]["compile_s"], summary["programs"]["run_s"]], 1),
        "s compiling, running (one program per schedule)")


if __name__ == "__main__":
  main()
