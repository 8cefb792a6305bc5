"""Does deciding on the held-out loss change the final test metric? (``lrjax compare --signal``)

For each task, the stateful lrjax schedules (``reduce_on_plateau``, ``greedy``,
``window_decay``) train with AdamW at one untuned peak, once deciding on the
training loss of every update (``--signal train``, their presets) and once on the
held-out loss at every evaluation (``--signal val``: ``signal="observe"``, fed by
``lrjax.observe``, settings counted in evaluations), beside a constant learning
rate. Seeds are the same for both signals (common random numbers), so the
per-seed difference is paired.

Usage:
  python benchmarks/val_signal.py [--tasks digits,regression,charlm] [--seeds 3]
"""

from __future__ import annotations

import argparse
import platform

import jax
import numpy as np

from lrjax.bench import runner, tasks, unroll

STEPS = {"digits": 500, "regression": 300, "charlm": 300}
EVAL_EVERY = {"digits": 25, "regression": 15, "charlm": 25}
ADAPTIVE = ("reduce_on_plateau", "greedy", "window_decay")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tasks", default="digits,regression,charlm")
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--peak", type=float, default=3e-3)
  args = parser.parse_args()
  print(f"# jax {jax.__version__}, backend {jax.default_backend()}, {platform.machine()}; "
        f"peak {args.peak:g}, {args.seeds} seeds (paired across signals)")
  for name in args.tasks.split(","):
    task = tasks.get_task(name)
    steps, every = STEPS[name], EVAL_EVERY[name]
    evaluations = -(-steps // every)
    finals = {}
    for signal in runner.SIGNAL_SOURCES:
      table = runner.optimizers(steps, args.peak, signal=signal, evaluations=evaluations)
      for sched in ("constant",) + ADAPTIVE:
        if sched == "constant" and signal == "val":
          continue
        finals[(sched, signal)] = np.array([
            unroll.train(task, table[sched](), steps, seed=s, eval_every=every,
                         observe_eval_loss=signal == "val").metric[-1]
            for s in range(args.seeds)])
    sign = 1 if task.higher_is_better else -1
    print(f"\ntask {name}: final {task.metric} after {steps} steps, evaluated every {every} "
          f"({evaluations} evaluations)")
    print("| schedule | --signal train | --signal val | val - train (paired mean ± std) | "
          "better with val |")
    print("|---|---:|---:|---:|---|")
    c = finals[("constant", "train")]
    print(f"| constant (anchor) | {c.mean():.4f} ± {c.std():.4f} | — | — | — |")
    for sched in ADAPTIVE:
      tr, va = finals[(sched, "train")], finals[(sched, "val")]
      diff = va - tr
      better = "yes" if sign * diff.mean() > diff.std() else (
          "no" if sign * diff.mean() < -diff.std() else "within noise")
      print(f"| {sched} | {tr.mean():.4f} ± {tr.std():.4f} | {va.mean():.4f} ± {va.std():.4f} | "
            f"{diff.mean():+.4f} ± {diff.std():.4f} | {better} |")


if __name__ == "__main__":
  main()
