"""lrjax.plan on the public loss curves of the multi-power-law paper (25M and 100M models).

For each model size: fit on ``cosine_24000``, ``constant_24000``, ``wsdcon_9`` and predict the other
six, as the source does. The one fitting choice (the weight of the prior on the multi-power shape)
is chosen by leaving one of the three training curves out, pooled over both sizes; the six held-out
curves play no part in it. Prints the leave-one-out table, the held-out table against the source's
own numbers, the annealing law as a baseline, fit times, and the schedule the law plans for
24,000 updates against cosine and WSD; writes the fit and plan PNGs to ``--out``.

Then, on lrjax's own charlm task: fit on three short runs (cosine, constant, two-stage) of a third
of the budget, plan for the full budget, and train the plan against warmup-cosine and WSD.

    python benchmarks/plan.py [--part public|charlm|all] [--out benchmarks/results/plan]
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


def own_task(args) -> dict:
  """Fit on three short charlm runs, plan for the full budget, train it against warmup-cosine
  and WSD at the same peak (every run AdamW, every seed on the same batches)."""
  import jax.numpy as jnp
  import optax
  from lrjax.bench import tasks
  task = tasks.get_task("charlm")
  total, peak = args.steps, args.peak
  short, warm, window = total // 3, max(1, total // 20), args.window

  def train(lrs, seed):
    tx = optax.adamw(lambda count: lrs[jnp.minimum(count, lrs.shape[0] - 1)])
    init_key, data_key = jax.random.split(jax.random.PRNGKey(seed))
    params = task.init(init_key)

    def step(carry, key):
      params, state = carry
      loss, grads = jax.value_and_grad(task.loss_fn)(params, task.sample(key))
      updates, state = tx.update(grads, state, params)
      return (optax.apply_updates(params, updates), state), loss

    _, losses = jax.lax.scan(step, (params, tx.init(params)),
                             jax.random.split(data_key, lrs.shape[0]))
    return losses

  # every (schedule, seed) of one length in one compiled program
  run = jax.jit(jax.vmap(train))

  def runs(schedules: dict, length: int) -> dict:
    names = list(schedules)
    lrs = np.stack([np.asarray(_evaluate(schedules[n], np.arange(length)), np.float64)
                    for n in names])
    seeds = np.arange(args.seeds)
    batch_lrs = np.repeat(lrs, len(seeds), axis=0)
    batch_seeds = np.tile(seeds, len(names))
    start = time.perf_counter()
    losses = np.asarray(run(jnp.asarray(batch_lrs, jnp.float32), jnp.asarray(batch_seeds)))
    print(f"  trained {len(names)} schedules x {len(seeds)} seeds x {length} updates in "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    losses = losses.reshape(len(names), len(seeds), length)
    return {n: (lrs[i], losses[i]) for i, n in enumerate(names)}

  def logged(lrs, losses, start=warm) -> plan.Curve:
    """The seed-mean training loss, averaged over windows of ``window`` updates and logged at
    each window's middle update, from update ``start``."""
    mean = losses.mean(axis=0)
    ends = np.arange(start + window, lrs.size + 1, window)
    return plan.Curve(lrs, ends - window // 2 - 1,
                      np.array([mean[e - window:e].mean() for e in ends]))

  stage = short * 2 // 3
  short_schedules = {
      "cosine": lrjax.warmup_cosine_decay(0.0, peak, warm, short),
      "constant": lrjax.join([lrjax.linear(0.0, peak, warm), lrjax.constant(peak)], [warm]),
      "two-stage": lrjax.join([lrjax.linear(0.0, peak, warm), lrjax.constant(peak),
                               lrjax.constant(0.3 * peak)], [warm, stage])}
  print(f"## charlm: fit on three runs of {short} updates, plan for {total} (peak {peak:g}, "
        f"warmup {warm}, AdamW, {args.seeds} seeds)")
  cache = os.path.join(args.out, f"charlm_runs_{total}_{peak:g}_{args.seeds}.npz")
  if args.reuse_runs and os.path.exists(cache):
    saved = np.load(cache)
    short_runs = {n: (saved[f"short {n} lrs"], saved[f"short {n} losses"])
                  for n in short_schedules}
    print(f"  (short runs read from {cache})")
  else:
    short_runs = runs(short_schedules, short)
  # Where the fitted stretch starts (the early transient is not the law's regime) is chosen by
  # leaving one short run out and judging on the last third of the short runs, common to all
  # candidates; the full runs play no part.
  judge = [logged(*short_runs[n], start=short - short // 3) for n in short_schedules]
  loo = {}
  for start in sorted({warm, short // 4, short // 3, short // 2, short * 2 // 3}):
    cut = [logged(*short_runs[n], start=start) for n in short_schedules]
    loo[start] = float(np.mean([
        plan.evaluate(plan.fit([c for j, c in enumerate(cut) if j != i]), [judge[i]])[0]
        ["mean_rel_error"] for i in range(3)]))
  fit_from = min(loo, key=loo.get)
  print("  leave-one-out mean rel. error on the short runs' last third, by first fitted update: "
        + ", ".join(f"{k}: {v:.4f}" for k, v in loo.items()) + f" -> fit from {fit_from}")
  fitted = [logged(*short_runs[n], start=fit_from)._replace(name=n) for n in short_schedules]
  law = plan.fit(fitted)
  print("  law: " + ", ".join(f"{k}={v:.4g}" for k, v in law.params.items()))
  planned = plan.optimize(law, total, peak, warm)
  cooldown = total // 5
  full_schedules = {"planned": planned,
                    "warmup-cosine": lrjax.warmup_cosine_decay(0.0, peak, warm, total),
                    "wsd (20% 1-sqrt cooldown)": lrjax.wsd(peak, warm, total - warm - cooldown,
                                                            cooldown)}
  predicted = plan.compare(law, full_schedules, total)
  if args.reuse_runs and os.path.exists(cache) and "full planned losses" in saved:
    full_runs = {n: (saved[f"full {n} lrs"], saved[f"full {n} losses"]) for n in full_schedules}
    planned_lrs = np.asarray(_evaluate(planned, np.arange(total)), np.float64)
    if not np.allclose(planned_lrs, saved["full planned lrs"], rtol=1e-6):
      full_runs.update(runs({"planned": planned}, total))   # the plan changed: train it again
  else:
    full_runs = runs(full_schedules, total)
  np.savez(cache, **{f"short {n} {k}": v for n, (lrs, losses) in short_runs.items()
                     for k, v in (("lrs", lrs), ("losses", losses))},
           **{f"full {n} {k}": v for n, (lrs, losses) in full_runs.items()
              for k, v in (("lrs", lrs), ("losses", losses))})
  tail = args.window
  print("| schedule | final training loss (mean of last "
        f"{tail} updates; mean ± std over seeds) | law's prediction of the final loss | "
        f"law's mean rel. error over the run (from update {fit_from}) |")
  print("|---|---:|---:|---:|")
  out = {"law": law.params, "fit_from": fit_from, "loo_by_fit_from": loo, "rows": {}}
  curves = []
  for name, (lrs, losses) in full_runs.items():
    finals = losses[:, -tail:].mean(axis=1)
    curve = logged(lrs, losses, start=fit_from)._replace(name=name)
    curves.append(curve)
    err = plan.evaluate(law, [curve])[0]["mean_rel_error"]
    out["rows"][name] = {"finals": finals.tolist(), "predicted_final": predicted[name],
                         "mean_rel_error": err}
    print(f"| {name} | {finals.mean():.4f} ± {finals.std():.4f} | {predicted[name]:.4f} | "
          f"{err:.4f} |")
  best_other = min((n for n in full_runs if n != "planned"),
                   key=lambda n: np.mean(out["rows"][n]["finals"]))
  diff = np.asarray(out["rows"]["planned"]["finals"]) - np.asarray(
      out["rows"][best_other]["finals"])
  noise = diff.std(ddof=1) / np.sqrt(diff.size) if diff.size > 1 else float("nan")
  verdict = ("a tie within noise" if abs(diff.mean()) <= 2 * noise else
             "planned lower" if diff.mean() < 0 else f"{best_other} lower")
  print(f"planned - {best_other} (the better baseline): {diff.mean():+.4f} (paired over seeds, "
        f"2 standard errors {2 * noise:.4f}): {verdict}")
  out["verdict"] = verdict
  plan.plot_fit(law, fitted + curves, path=os.path.join(args.out, "charlm_fit.png"),
                fitted=list(short_schedules))
  plan.plot_plan(law, full_schedules, total, path=os.path.join(args.out, "charlm_plan.png"))
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default=os.path.join("benchmarks", "results", "plan"))
  parser.add_argument("--part", choices=("public", "charlm", "all"), default="all")
  parser.add_argument("--steps", type=int, default=1200, help="charlm's full budget")
  parser.add_argument("--peak", type=float, default=3e-3, help="charlm's peak rate")
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--window", type=int, default=20,
                      help="updates averaged per logged charlm loss")
  parser.add_argument("--reuse-runs", action="store_true",
                      help="read charlm's training runs from the last run's .npz in --out "
                      "(a changed plan is trained again)")
  args = parser.parse_args()
  os.makedirs(args.out, exist_ok=True)
  if args.part in ("charlm", "all"):
    result = own_task(args)
    with open(os.path.join(args.out, "charlm.json"), "w") as f:
      json.dump(result, f, indent=1)
    if args.part == "charlm":
      return
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
