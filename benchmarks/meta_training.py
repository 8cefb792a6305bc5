"""Does the L-BFGS imitation fit help evolution strategies? Measured, side by side.

Two meta-training runs with the same seed, the same task draws and the same
perturbations: one starts ES from the L-BFGS fit of the hand-made rule
(``lbfgs_steps=150``, the shipped setting), one from random weights with a
zero output layer (a constant rate; ``lbfgs_steps=0``). Both are evaluated on
the same 12 validation draws (synthetic, seeds apart from training) every
``--every`` iterations. Reported: the validation meta-loss over ES iterations
and wall time, the hand rule itself, and the ES iterations each needs to reach
the other's final level.

Usage:
  python benchmarks/meta_training.py [--iterations 300] [--every 50]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import numpy as np

from lrjax import meta
from lrjax.transforms import _learned


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--iterations", type=int, default=300)
  parser.add_argument("--every", type=int, default=50)
  parser.add_argument("--out", default="benchmarks/results/meta_training.json")
  args = parser.parse_args()
  val = meta.validation_draws()
  dummy = _learned.init_weights(jax.random.PRNGKey(0))
  hand = float(np.mean(meta.evaluate(dummy, val, policy=meta.hand_rule)))
  zero_out = float(np.mean(meta.evaluate(dummy, val)))  # a constant rate
  print(f"# validation meta-loss: constant rate {zero_out:.4f}, hand rule {hand:.4f}",
        flush=True)
  runs = {}
  for name, lbfgs in (("lbfgs_then_es", 150), ("es_only", 0)):
    t0 = time.perf_counter()
    stamps = []
    result = meta.meta_train(iterations=args.iterations, lbfgs_steps=lbfgs,
                             validate_every=args.every, validation=val, progress=False,
                             log=lambda line: stamps.append(time.perf_counter()) or print(
                                 name, line, flush=True))
    runs[name] = {"validation": result.validation, "wall_time": result.wall_time,
                  "seconds_at_validation": [s - t0 for s in stamps],
                  "lbfgs_final": result.lbfgs_history[-1] if result.lbfgs_history else None}
    print(f"{name}: {result.wall_time:.0f} s", flush=True)

  def first_reaching(curve, level):
    hits = [i for i, v in curve if v <= level]
    return hits[0] if hits else None

  a, b = runs["lbfgs_then_es"]["validation"], runs["es_only"]["validation"]
  summary = {"constant_rate": zero_out, "hand_rule": hand, "runs": runs,
             "es_only_final_reached_by_lbfgs_at": first_reaching(a, b[-1][1]),
             "lbfgs_final_reached_by_es_only_at": first_reaching(b, a[-1][1])}
  print("| ES iteration | L-BFGS then ES | ES only |\n|---:|---:|---:|")
  for (i, va), (_, vb) in zip(a, b):
    print(f"| {i} | {va:.4f} | {vb:.4f} |")
  print(json.dumps({k: v for k, v in summary.items() if k != "runs"}))
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(summary, f, indent=1)


if __name__ == "__main__":
  main()
