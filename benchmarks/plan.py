"""lrjax.plan on the public loss curves of the multi-power-law paper (25M and 100M models).

For each model size: fit on ``cosine_24000``, ``constant_24000``, ``wsdcon_9`` and predict the other
six, as the source does. The one fitting choice (the weight of the prior on the multi-power shape)
is chosen by leaving one of the three training curves out, pooled over both sizes; the six held-out
curves play no part in it. Prints the leave-one-out table, the held-out table against the source's
own numbers, the annealing law as a baseline, fit times, and the schedule the law plans for
24,000 updates against cosine and WSD; writes the fit and plan PNGs to ``--out``.

    python benchmarks/plan.py [--out benchmarks/results/plan]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import lrjax  # noqa: E402
from lrjax import plan  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "loss-curves")
SIZES = ("25M", "100M")
TRAIN = ("cosine_24000", "constant_24000", "wsdcon_9")
HELD_OUT = ("cosine_72000", "constant_72000", "wsd_20000_24000", "wsdld_20000_24000",
            "wsdcon_3", "wsdcon_18")
PEAK, WARMUP = 3e-4, 2160
# The source's fit, as the mean over the six held-out curves: R^2, mean and worst relative error.
SOURCE = {"25M": (0.9988, 0.00110, 0.00409), "100M": (0.9983, 0.00142, 0.00583)}
PRIOR_WEIGHTS = (0.0, 1e-5, 1e-4, 1e-3, 1e-2)


def public_schedule(name: str) -> lrjax.Schedule:
  """The per-update rate of a public curve (data/loss-curves/README.md) as an lrjax schedule:
  ``numpy.linspace(0, 3e-4, 2160)`` warmup, then the file's schedule."""
  warm = lrjax.linear(0.0, PEAK, WARMUP - 1)        # update t < 2160: 3e-4 * t / 2159
  kind, arg = name.split("_")[0], name.split("_")[-1]
  if kind == "constant":
    return lrjax.join([warm, lrjax.constant(PEAK)], [WARMUP])
  if kind == "cosine":
    return lrjax.join([warm, lrjax.cosine_decay(PEAK, int(arg) - WARMUP, end_value=3e-5)],
                      [WARMUP])
  if kind == "wsdcon":
    return lrjax.join([warm, lrjax.constant(PEAK), lrjax.constant(int(arg) * 1e-5)],
                      [WARMUP, 8000])
  if kind == "wsdld":
    return lrjax.join([warm, lrjax.constant(PEAK), lrjax.linear(PEAK, 3e-5, 4000)],
                      [WARMUP, 20000])
  if kind == "wsd":
    return lrjax.join([warm, lrjax.constant(PEAK), lrjax.exponential_decay(PEAK, 4000, 0.1)],
                      [WARMUP, 20000])
  raise ValueError(f"unknown public curve {name!r}")


_evaluate = jax.jit(lambda schedule, steps: schedule(steps))


@functools.lru_cache(maxsize=None)
def public_rates(name: str) -> np.ndarray:
  """Every update's rate of a public curve (float64), evaluated once."""
  n = 16000 if name.startswith("wsdcon") else int(name.split("_")[-1])
  return np.asarray(_evaluate(public_schedule(name), np.arange(n)), dtype=np.float64)


def public_curves(size: str, names) -> list:
  return [plan.read_csv(os.path.join(DATA, size, f"{n}.csv"), lrs=public_rates(n))
          for n in names]


def mean_metrics(rows) -> tuple[float, float, float]:
  return tuple(float(np.mean([r[k] for r in rows]))
               for k in ("r2", "mean_rel_error", "worst_rel_error"))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default=os.path.join("benchmarks", "results", "plan"))
  args = parser.parse_args()
  os.makedirs(args.out, exist_ok=True)
  train = {s: public_curves(s, TRAIN) for s in SIZES}
  held = {s: public_curves(s, HELD_OUT) for s in SIZES}
  results: dict = {"loo": {}, "held_out": {}}

  print("## Choosing the prior weight: leave one training curve out (mean over the 3 and the 2 "
        "sizes)")
  print("| prior weight | R^2 | mean rel. error | worst rel. error |")
  print("|---:|---:|---:|---:|")
  for weight in PRIOR_WEIGHTS:
    rows = []
    for s in SIZES:
      for i in range(3):
        law = plan.fit([c for j, c in enumerate(train[s]) if j != i], prior_weight=weight)
        rows += plan.evaluate(law, [train[s][i]])
    m = mean_metrics(rows)
    results["loo"][weight] = m
    print(f"| {weight:g} | {m[0]:.5f} | {m[1]:.5f} | {m[2]:.5f} |", flush=True)
  chosen = min(results["loo"], key=lambda w: results["loo"][w][1])
  print(f"lowest leave-one-out mean relative error: prior weight {chosen:g} "
        f"(the default is {plan._fit.PRIOR_WEIGHT:g})\n")

  print("## Fit on cosine_24000, constant_24000, wsdcon_9; predict the other six (mean of six)")
  print("| size | law | R^2 | mean rel. error | worst rel. error | fit time |")
  print("|---|---|---:|---:|---:|---:|")
  laws = {}
  for s in SIZES:
    r2, mean, worst = SOURCE[s]
    print(f"| {s} | source's multi-power fit | {r2:.4f} | {mean:.5f} | {worst:.5f} | |")
    for name in ("multi_power", "annealing"):
      plan.fit(train[s], law=name)                     # compile once; time the second fit
      start = time.perf_counter()
      law = plan.fit(train[s], law=name)
      seconds = time.perf_counter() - start
      m = mean_metrics(plan.evaluate(law, held[s]))
      results["held_out"][f"{s} {name}"] = {"metrics": m, "params": law.params,
                                           "fit_seconds": seconds}
      print(f"| {s} | lrjax {name} | {m[0]:.5f} | {m[1]:.5f} | {m[2]:.5f} | {seconds:.1f} s |",
            flush=True)
      if name == "multi_power":
        laws[s] = law
  for s in SIZES:
    print(f"\n{s} per held-out curve (lrjax multi_power):")
    for r in plan.evaluate(laws[s], held[s]):
      print(f"  {r['name']:<20} R^2 {r['r2']:.5f}  mean {r['mean_rel_error']:.5f}  worst "
            f"{r['worst_rel_error']:.5f}")
    plan.plot_fit(laws[s], train[s] + held[s], path=os.path.join(args.out, f"fit_{s}.png"),
                  fitted=TRAIN)

  print("\n## Planned for 24,000 updates (peak 3e-4, warmup 2160): predicted final loss")
  for s in SIZES:
    start = time.perf_counter()
    planned = plan.optimize(laws[s], 24000, PEAK, WARMUP)
    seconds = time.perf_counter() - start
    schedules = {"planned": planned,
                 "cosine to 3e-5 (the source's)": public_schedule("cosine_24000"),
                 "wsd, 4000-update cooldown (the source's)": public_schedule("wsd_20000_24000"),
                 "warmup-cosine to 0": lrjax.warmup_cosine_decay(0.0, PEAK, WARMUP, 24000)}
    table = plan.compare(laws[s], schedules, 24000)
    results[f"plan {s}"] = {"table": table, "seconds": seconds}
    print(f"{s} (planned in {seconds:.1f} s): "
          + "; ".join(f"{k} {v:.4f}" for k, v in table.items()))
    plan.plot_plan(laws[s], schedules, 24000, path=os.path.join(args.out, f"plan_{s}.png"))
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f, indent=1, default=str)
  print(f"\nwrote {args.out}/results.json, fit_*.png, plan_*.png")


if __name__ == "__main__":
  main()
