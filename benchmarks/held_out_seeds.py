"""One task of ``learned_controller.py`` on seeds its recorded run never used: how much of a cell
is the seeds, and how much of tuned's lead is its peak being chosen on the seeds it is judged on.

The recorded run picks tuned warmup-cosine's peak on the same seeds it then divides every
method by. On a task whose single seeds range over orders of magnitude (deep_mlp: a run's final
training loss is how many of the last few training examples it has memorised), that choice
fits the seeds. This script runs the recorded peak (``--peak``), half and twice it, and the
no-rate methods on other seeds (``--first-seed``, 24 by default: deep_mlp's recorded run uses
0-23), each divided by the recorded peak's run on the same seed, and prints the cell as the
benchmark computes it (the mean final loss over the seeds, over tuned's), seed by seed (the
geometric mean of each seed's ratio), the worst seed and the share of seeds within 1.10x::

    python benchmarks/held_out_seeds.py --task deep_mlp --peak 0.01 --seeds 24 --first-seed 24

``learned (no horizon), no bound`` is the no-horizon controller before ``max_multiplier``
(``max_multiplier=1e9``).
"""

from __future__ import annotations

import time

import numpy as np

import learned_controller as bench
import lrjax

METHODS = ("learned", "learned (no horizon)", "learned, network off", "prodigy + warmup-cosine")


def main() -> None:
  args, task, steps, seeds = bench.one_task_args(__doc__, seeds=24, first_seed=24)
  start = time.perf_counter()

  def run(make_tx):
    return bench.runs(task, lambda lr: make_tx(), [args.peak], seeds, steps)["final"][0]

  tuned = run(lambda: bench.build("warmup_cosine", args.peak, steps))
  print(f"# {args.task}, {steps} updates, seeds {seeds[0]}..{seeds[-1]}, the recorded peak "
        f"{args.peak:g}")
  print("| run | by the mean (the cell) | seed by seed (geo. mean) | worst seed | within 1.10× |")
  print("|---|---:|---:|---:|---:|")

  def report(name, final):
    ratio = final / tuned
    print(f"| {name} | {np.mean(final) / np.mean(tuned):.3g} | "
          f"{bench.seed_by_seed(ratio):.3g} | {np.max(ratio):.3g} | "
          f"{np.mean(ratio <= 1.10):.0%} |", flush=True)

  for factor in (0.5, 2.0):
    report(f"tuned warmup-cosine at {factor:g}× the peak",
           run(lambda: bench.build("warmup_cosine", factor * args.peak, steps)))
  for method in METHODS:
    report(method, run(lambda: bench.build(method, None, steps)))
  report("learned (no horizon), no bound",
         run(lambda: lrjax.learned_controller(bench.adamw, max_multiplier=1e9)))
  print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
  main()
