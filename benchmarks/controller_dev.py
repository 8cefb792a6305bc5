"""The learned controller's development set: synthetic draws, each against its tuned warmup-cosine.

``benchmarks/learned_controller.py`` judges the controller on real tasks it never saw. Choosing
between designs (a rule, a weights file, a meta-objective) on those tasks would tune on the
test set, so the choices are made here instead, on the synthetic family it is meta-trained on
(``lrjax.meta.FAMILY``, and ``lrjax.meta.STRUCTURES``' others with ``--structures``; instances
from seeds no meta-training draw uses).

For each structure and horizon ``T``, ``--seeds`` instances (each seed: its own task instance,
initialisation and batches) are trained by AdamW (weight decay 1e-4) under Optax's
warmup-cosine (10% warmup, cosine to 0) at every peak of a half-decade grid 3e-5 ... 1; the
peak of the lowest geometric mean final loss over the instances is the structure's tuned
peak. Then every variant trains the same instances on the same batches, and each cell is its
final training loss (the mean over the last 10% of updates) over tuned warmup-cosine's at the
tuned peak. A run whose final loss is not finite or above its first loss counts as ∞.

Variants (no rate to choose in any of them):
- ``rule`` -- ``lrjax.learned_controller`` with a zero network (Prodigy's estimate under the
  warmup-cosine shape), and ``rule, no horizon`` (no ``total_steps``);
- ``shipped`` / ``shipped, no horizon`` -- the shipped weights;
- ``file:PATH`` / ``file:PATH, no horizon`` -- a weights file (``--weights PATH[,PATH...]``);
- ``prodigy + warmup-cosine`` -- ``optax.contrib.prodigy`` under Optax's warmup-cosine at peak 1
  (its warmup starting at 1/W);
- any of the controller's names followed by ``, every K`` (e.g. ``shipped, every 3``): the
  network decides every ``K`` updates (without it: at every update, as meta-training runs it);
  ``, every auto``: ``learned_controller``'s default, every ``total_steps // 300`` updates.
- ``, coef C``: Prodigy's ``d_coef`` (``learned_controller(d_coef=C)``); ``, eps E``: the inner
  AdamW's ``eps`` (1e-8 by default); ``, warmup F``: a warmup over the fraction F of the horizon
  (the default's is 0.1); ``, guard off``: no spike guard (nor its ceiling); ``, gfactor K``
  and ``, gcut C``: the guard's ``guard_factor`` and ``guard_cut``; ``, mcap M``: the network's
  rate at most ``M`` times the estimate (``max_multiplier``; ``1e9``: no bound).

Usage:
  python benchmarks/controller_dev.py [--structures quadratic,...] [--horizons 300,1000]
      [--seeds 6] [--weights new.npz,other.npz] [--variants rule,shipped,...]
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrjax
from learned_controller import adamw, build, final_training_loss  # the benchmark beside this
from lrjax import meta

PEAKS = np.asarray([10 ** (k / 2) for k in range(-9, 1)], np.float32)  # 3e-5 ... 1
FIRST_SEED = 1000


def unroll(task, make_tx, steps):
  """``(seed, setting) -> per-update losses`` of one run (traceable)."""
  def run(seed, setting):
    init_key, data_key = jax.random.split(jax.random.PRNGKey(seed))
    params, loss_fn = task(init_key)
    tx = make_tx(setting)

    def body(carry, t):
      p, s = carry
      loss, g = jax.value_and_grad(loss_fn)(p, jax.random.fold_in(data_key, t))
      u, s = tx.update(g, s, p, value=loss)
      return (optax.apply_updates(p, u), s), loss
    _, losses = jax.lax.scan(body, (params, tx.init(params)), jnp.arange(steps))
    return losses
  return run


def geometric_mean(ratios: np.ndarray) -> float:
  """Of ratios clipped to [1e-6, 1e6]: a run that memorised its data to a loss of exactly 0,
  or one that diverged, counts as that bound rather than as 0 or ∞."""
  return float(np.exp(np.mean(np.log(np.clip(ratios, 1e-6, 1e6)))))


def variant(name: str, steps: int, weights: dict):
  """``setting -> transform`` of a variant (the setting is unused: none has a rate)."""
  if name == "prodigy + warmup-cosine":
    return lambda _: build(name, None, steps)
  base, *options = name.split(", ")
  total = None if "no horizon" in options else steps
  given = dict(o.split(" ", 1) for o in options if " " in o)  # "every 3" -> {"every": "3"}
  # "every K": decide every K updates; "every auto": the default, total_steps // DECISIONS.
  k = None if given.get("every") == "auto" else int(given.get("every", 1))
  inner = ((lambda lr: optax.adamw(lr, weight_decay=1e-4, eps=float(given["eps"])))
           if "eps" in given else adamw)
  w = int(float(given["warmup"]) * total) if "warmup" in given and total else None
  # Only the guard settings a variant names; the others keep learned_controller's defaults.
  guard = {arg: float(given[key]) for key, arg in (("gfactor", "guard_factor"),
                                                   ("gcut", "guard_cut")) if key in given}
  # "mcap M": the network's rate at most M times the estimate (max_multiplier).
  cap = {"max_multiplier": float(given["mcap"])} if "mcap" in given else {}
  return lambda _: lrjax.learned_controller(inner, total_steps=total, weights=weights[base],
                                            every=k, d_coef=float(given.get("coef", 1.0)),
                                            warmup_steps=w, guard="guard off" not in options,
                                            **cap, **guard)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--structures", default=",".join(meta.FAMILY))
  parser.add_argument("--horizons", default="300,1000")
  parser.add_argument("--seeds", type=int, default=6)
  parser.add_argument("--weights", default=None,
                      help="weights files to judge beside the others, separated by commas")
  parser.add_argument("--variants", default=None,
                      help="the variants to run, separated by ';' (their names hold "
                      "commas); default: all")
  parser.add_argument("--per-seed", action="store_true",
                      help="also print every cell's ratios, instance by instance")
  args = parser.parse_args()
  zero = {k: np.zeros_like(v) for k, v in meta.load_weights().items()}
  weights = {"rule": zero, "shipped": None}
  names = ["rule", "rule, no horizon", "shipped", "shipped, no horizon"]
  for path in args.weights.split(",") if args.weights else []:
    weights[f"file:{path}"] = path
    names += [f"file:{path}", f"file:{path}, no horizon"]
  names.append("prodigy + warmup-cosine")
  if args.variants:  # any listed name; "NAME, every K" decides every K updates
    names = args.variants.split(";")
  seeds = jnp.arange(FIRST_SEED, FIRST_SEED + args.seeds)
  print(f"# jax {jax.__version__}, optax {optax.__version__}, {jax.default_backend()}, "
        f"{platform.machine()}; {args.seeds} instances a structure (seeds {FIRST_SEED}...)")
  ratios = {n: [] for n in names}
  per_seed: list[str] = []
  start = time.perf_counter()
  for steps in [int(h) for h in args.horizons.split(",")]:
    print(f"\n## horizon {steps}\n| structure | tuned peak | " + " | ".join(names) + " |")
    print("|---|---:|" + "---:|" * len(names))
    for structure in args.structures.split(","):
      task = meta.STRUCTURES[structure]
      tuned_tx = lambda peak: build("warmup_cosine", peak, steps)  # noqa: E731
      grid = jax.jit(jax.vmap(jax.vmap(unroll(task, tuned_tx, steps), (None, 0)), (0, None)))
      finals = final_training_loss(np.asarray(grid(seeds, jnp.asarray(PEAKS)), np.float64))
      best = int(np.argmin(np.mean(np.log(finals), 0)))
      tuned = finals[:, best]
      cells = []
      for name in names:
        run = jax.jit(jax.vmap(unroll(task, variant(name, steps, weights), steps), (0, None)))
        r = final_training_loss(np.asarray(run(seeds, 0.0), np.float64)) / tuned
        ratios[name].extend(r.tolist())
        cells.append(f"{geometric_mean(r):.2f} (worst {np.max(r):.2f})")
      print(f"| {structure} | {PEAKS[best]:.3g} | " + " | ".join(cells) + " |", flush=True)
      if args.per_seed:
        per_seed.extend(f"- {steps} updates, {structure}, {name}: "
                        + ", ".join(f"{x:.3g}" for x in ratios[name][-len(seeds):])
                        for name in names)
    if per_seed:
      print("\nInstance by instance (seeds in order):\n" + "\n".join(per_seed))
      per_seed.clear()
  print(f"\n## Summary over every instance ({time.perf_counter() - start:.0f} s)")
  print("| variant | within 1.10× | median | geometric mean | worst |\n|---|---:|---:|---:|---:|")
  for name in names:
    r = np.asarray(ratios[name])
    print(f"| {name} | {np.mean(r <= 1.10):.0%} | {np.median(r):.3f} | "
          f"{geometric_mean(r):.3f} | {np.max(r):.3g} |")


if __name__ == "__main__":
  main()
