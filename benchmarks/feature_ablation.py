"""Which of its inputs the learned controller's result on a task depends on: each input's row
of the shipped weights' input layer zeroed in turn (the network then sees that input as 0).

Runs ``learned_controller(adamw, total_steps=T)`` (the default), the network off (the rule
alone) and one variant per input on the same seeds, batches and initialisations as
``learned_controller.py``, and prints each against tuned warmup-cosine at the given peak, seed
by seed (the geometric mean of each seed's final training loss over tuned's), by the mean
over seeds, the worst seed and the median rate at half the run::

    python benchmarks/feature_ablation.py --task deep_mlp --peak 0.01 --seeds 24

An ablation of a network trained with every input changes what it sees, not what it was
trained to do: read a large change as "the result depends on this input", not as "the network
is better without it".
"""

from __future__ import annotations

import time

import jax.numpy as jnp
import numpy as np

import learned_controller as bench
import lrjax
from lrjax import meta
from lrjax.transforms._learned import FEATURES


def main() -> None:
  args, task, steps, seeds = bench.one_task_args(__doc__, seeds=24)
  start = time.perf_counter()

  def run(make_tx):
    return bench.runs(task, lambda lr: make_tx(), [args.peak], seeds, steps)

  tuned = run(lambda: bench.build("warmup_cosine", args.peak, steps))["final"][0]
  print(f"# {args.task}, {steps} updates, seeds {seeds[0]}..{seeds[-1]}, tuned peak {args.peak:g}")
  print("| variant | per seed (geo. mean) | by the mean | worst seed | median rate at T/2 |")
  print("|---|---:|---:|---:|---:|")

  def report(name, weights):
    out = run(lambda: lrjax.learned_controller(bench.adamw, total_steps=steps, weights=weights))
    ratio = out["final"][0] / tuned
    print(f"| {name} | {bench.seed_by_seed(ratio):.3g} | "
          f"{np.mean(out['final'][0]) / np.mean(tuned):.3g} | {np.max(ratio):.3g} | "
          f"{np.median(out['lrs'][0][:, steps // 2]):.3g} |", flush=True)

  shipped = meta.load_weights()
  report("default (every input)", None)
  report("network off (the rule)", {k: jnp.zeros_like(w) for k, w in shipped.items()})
  for i, name in enumerate(FEATURES):
    report(f"`{name}` zeroed", dict(shipped, w_input=shipped["w_input"].at[i].set(0.0)))
  print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
  main()
