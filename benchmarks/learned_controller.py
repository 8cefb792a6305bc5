"""How the learned controller does without tuning, on tasks it never saw.

The shipped weights were meta-trained on synthetic tasks only (``lrjax.meta``).
Here they are judged on real tasks: ``lrjax.tasks`` digits (CNN), regression
(MLP on diabetes), charlm (transformer), and two written for this benchmark,
``autoencoder`` (an MLP autoencoder of the digits images, squared error) and
``deep_mlp`` (a 5-layer ReLU MLP classifying scikit-learn's breast-cancer data).

For each task the peak of an AdamW warmup-cosine schedule (10% linear warmup,
cosine to 0) is tuned on a half-decade grid by the mean final training loss of
3 seeds (charlm 2, deep_mlp 24: its single seeds range 0.1-30x tuned for every
method, its tuned schedule's own at 0.95x its peak included), the grid widened
until the best is not at its edge. Then every method
starts at ``tuned × {1/30, 1/10, 1/3, 1, 3, 10}`` with the same seeds (same
initialisation and batches for every method), and its final training loss (the
mean over the last 10% of updates) is divided by tuned warmup-cosine's. A run
whose final training loss is not finite or above its first loss is *diverged*
(ratio ∞). Lower is better; 1.0 is as good as tuned.

Also: the share of cells within 1.10×, the worst ratio, the held-out (test)
loss ratio beside the training one, an AlgoPerf-style score (area under the
performance profile of steps-to-target ratios over τ ∈ [1, 4]: the target is
1.10× tuned warmup-cosine's final training loss, reached when the running mean
of the last 10% of updates' losses is below it; a miss is ∞), ablations (the
hidden state reset at every decision; the controller's own LR trace replayed
open-loop on new seeds), a horizon 5× longer than any meta-training horizon, and
every cell judged seed by seed: the geometric mean over seeds of each seed's
final loss ÷ tuned's on the same seed (where a memorising task's tiny losses let
one seed decide a mean over seeds).

Usage:
  python benchmarks/learned_controller.py [--tasks digits,regression,...] [--seeds 3]
      [--out benchmarks/results/learned_controller] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrjax
from lrjax import meta
from lrjax.bench import report, tasks, unroll
from lrjax.schedules._base import build_preset

WEIGHT_DECAY = 1e-4
STARTS = (1 / 30, 1 / 10, 1 / 3, 1.0, 3.0, 10.0)
STEPS = {"digits": 300, "regression": 300, "charlm": 200, "autoencoder": 300, "deep_mlp": 300}
METHODS = ("learned", "learned (no horizon)", "learned, network off", "learned (given rate)",
           "prodigy + warmup-cosine", "prodigy", "constant",
           "schedule_free_adamw", "reduce_on_plateau", "greedy", "window_decay",
           "hypergradient", "hypergradient (no guard)")
# Every start for these; the other methods at tuned/10, tuned and tuned x 10 (CPU time).
ALL_STARTS = ("learned (given rate)", "constant", "schedule_free_adamw")
# No starting rate: one run, the same in every column.
NO_START = ("learned", "learned (no horizon)", "learned, network off", "prodigy + warmup-cosine",
            "prodigy")
COMMON = (1, 3, 5)  # the indices of STARTS every method runs
SEQUENTIAL = ("digits", "charlm")  # lax.map, not vmap (a vmap over conv weights is slow on CPUs)
ABLATION_TASKS = ("regression", "autoencoder", "deep_mlp")
LONG_STEPS = 10_000  # 5x the longest meta-training horizon (2,000)
MODE = "vmap"  # how runs batch: "vmap" or "map" (sequential, in one program)


def adamw(lr):
  return optax.adamw(lr, weight_decay=WEIGHT_DECAY)


# ---------------------------------------------------------------------------------------------
# Two more tasks, of other shapes.

def autoencoder_task() -> tasks.Task:
  """An MLP autoencoder (64-32-8-32-64, tanh) of the digits images; test squared error."""
  nn = tasks.needs("flax.linen")
  datasets = tasks.needs("sklearn.datasets")
  x = (datasets.load_digits().data / 16.0).astype(np.float32)
  train_idx, _, test_idx = tasks.split(len(x))
  xtr, xte = jnp.asarray(x[train_idx]), jnp.asarray(x[test_idx])

  class AE(nn.Module):
    @nn.compact
    def __call__(self, x):
      for w in (32, 8, 32):
        x = jnp.tanh(nn.Dense(w)(x))
      return nn.Dense(64)(x)

  model = AE()
  loss_fn = lambda p, b: jnp.mean((model.apply(p, b) - b) ** 2)  # noqa: E731

  def evaluate(p):
    mse = loss_fn(p, xte)
    return {"loss": mse, "metric": mse}

  def sample(key):
    return xtr[jax.random.randint(key, (64,), 0, xtr.shape[0])]

  return tasks.Task("autoencoder", "test MSE", False, 0.03, lambda k: model.init(k, xtr[:1]),
                    loss_fn, evaluate, sample)


def deep_mlp_task() -> tasks.Task:
  """A 5-layer ReLU MLP (width 64) on scikit-learn's breast-cancer data, standardized."""
  nn = tasks.needs("flax.linen")
  datasets = tasks.needs("sklearn.datasets")
  data = datasets.load_breast_cancer()
  x, y = data.data.astype(np.float32), data.target.astype(np.int32)
  train_idx, _, _ = tasks.split(len(x))
  x = (x - x[train_idx].mean(0)) / x[train_idx].std(0)

  class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
      for _ in range(5):
        x = nn.relu(nn.Dense(64)(x))
      return nn.Dense(2)(x)

  task = tasks.classification_task("deep_mlp", x, y, MLP(), batch=32, target=0.95,
                                     metric="accuracy")
  return task


def get_task(name):
  return {"autoencoder": autoencoder_task, "deep_mlp": deep_mlp_task}.get(
      name, lambda: tasks.get_task(name))()


# ---------------------------------------------------------------------------------------------
# Runs: a vmap over (starting rates, seeds) in one program.

def warmup_cosine_shape(steps):
  """Optax's warmup-cosine at peak 1 (10% warmup, cosine to 0), its warmup starting at 1/W
  rather than 0 (a multiplier of exactly 0 at Prodigy's first update makes its estimate NaN)."""
  w = max(steps // 10, 1)
  cosine = optax.cosine_decay_schedule(1.0, steps - w)
  return lambda c: jnp.where(c < w, (c + 1.0) / w, cosine(c - w))


def build(method: str, lr, steps: int, total_steps=True):
  horizon = steps if total_steps else None
  if method == "learned":  # no starting rate: its base is its own estimate
    return lrjax.learned_controller(adamw, total_steps=horizon)
  if method == "learned, network off":  # a zero output: the estimate under warmup-cosine alone
    zero = {k: jnp.zeros_like(w) for k, w in meta.load_weights().items()}
    return lrjax.learned_controller(adamw, total_steps=horizon, weights=zero)
  if method == "learned (no horizon)":
    return lrjax.learned_controller(adamw)
  if method == "learned (given rate)":
    return lrjax.learned_controller(adamw, init_value=lr, total_steps=horizon)
  if method == "prodigy + warmup-cosine":
    return optax.contrib.prodigy(warmup_cosine_shape(steps), weight_decay=WEIGHT_DECAY)
  if method == "constant":
    return adamw(lr)
  if method == "schedule_free_adamw":
    return optax.contrib.schedule_free_adamw(lr, warmup_steps=max(steps // 10, 1),
                                             weight_decay=WEIGHT_DECAY)
  if method == "hypergradient":
    return lrjax.hypergradient(adamw, init_value=lr, hyper_lr=1e-7)
  if method == "hypergradient (no guard)":
    return lrjax.hypergradient(adamw, init_value=lr, hyper_lr=1e-7, guard=False)
  if method == "prodigy":
    return optax.contrib.prodigy(1.0, weight_decay=WEIGHT_DECAY)
  if method == "warmup_cosine":  # optax's schedule at peak 1, times a (possibly traced) peak
    shape = optax.warmup_cosine_decay_schedule(0.0, 1.0, max(steps // 10, 1), steps)
    return optax.inject_hyperparams(optax.adamw)(learning_rate=lambda c: lr * shape(c),
                                                 weight_decay=WEIGHT_DECAY)
  return optax.inject_hyperparams(optax.adamw)(learning_rate=build_preset(method, steps, lr),
                                               weight_decay=WEIGHT_DECAY)


def final_training_loss(losses: np.ndarray) -> np.ndarray:
  """The mean loss of the last 10% of updates (last axis); ∞ for a diverged run, one whose
  final loss is not finite or above its first loss."""
  final = losses[..., -max(losses.shape[-1] // 10, 1):].mean(-1)
  return np.where(~np.isfinite(final) | (final > losses[..., 0]), np.inf, final)


def runs(task, make_tx, lrs, seeds, steps):
  """Final training loss, first loss, held-out loss, per-update losses and LRs of every
  (lr, seed): arrays of shape (len(lrs), len(seeds), ...)."""
  # lrjax compare's population program: one evaluation, at the end; on CPUs one run after
  # another (a vmap over conv weights is slow there), else every run side by side.
  grid_lr = np.repeat(np.asarray(lrs, np.float32), len(seeds))
  grid_seed = np.tile(np.asarray(seeds, np.int32), len(lrs))
  fn = unroll.population(task, make_tx, steps, eval_every=steps,
                         batch_size=len(grid_lr) if MODE == "vmap" else 1)
  out = jax.tree.map(lambda x: np.asarray(x).reshape((len(lrs), len(seeds)) + x.shape[1:]),
                     fn(grid_lr, grid_seed))
  held_out, losses, lrs_out = out.eval_loss[..., -1], out.loss, out.lr
  losses = np.asarray(losses, np.float64)
  final = final_training_loss(losses)
  diverged = np.isinf(final)
  return dict(final=final, diverged=diverged,
              held_out=np.where(diverged, np.inf, np.asarray(held_out, np.float64)),
              losses=losses, lrs=np.asarray(lrs_out, np.float64))


def steps_to_target(losses: np.ndarray, target: float) -> float:
  """First update after which the running mean of the last 10% of losses is <= target."""
  window = max(len(losses) // 10, 1)
  if not np.all(np.isfinite(losses)):
    cut = np.argmax(~np.isfinite(losses))
    losses = losses[:cut]
  if len(losses) < window:
    return math.inf
  means = np.convolve(losses, np.ones(window) / window, mode="valid")
  hit = np.nonzero(means <= target)[0]
  return float(hit[0] + window) if hit.size else math.inf


def tune(task, steps, seeds):
  """The best warmup-cosine peak on a half-decade grid widened until it is not at an edge."""
  grid = [1e-3 * 10 ** (k / 2) for k in range(-2, 4)]  # 1e-4 ... 3e-2
  results = {}
  while True:
    todo = [p for p in grid if p not in results]
    if todo:
      out = runs(task, lambda lr: build("warmup_cosine", lr, steps), todo, seeds, steps)
      for i, p in enumerate(todo):
        results[p] = {k: v[i] for k, v in out.items()}
    means = {p: np.mean(results[p]["final"]) for p in grid}
    best = min(grid, key=lambda p: means[p])
    if best == grid[0] and best > 1e-6:
      grid.insert(0, grid[0] / math.sqrt(10))
    elif best == grid[-1] and best < 10:
      grid.append(grid[-1] * math.sqrt(10))
    else:
      return best, results[best], {p: means[p] for p in grid}


def seed_by_seed(ratios) -> float:
  """A cell judged seed by seed: the geometric mean over seeds of each seed's final loss over
  tuned's on that seed."""
  return float(np.exp(np.mean(np.log(ratios))))


def one_task_args(doc: str, seeds: int, first_seed: int = 0):
  """``--task``, ``--peak`` (its tuned peak), ``--seeds`` and ``--first-seed`` of a script that
  studies one task at its tuned peak (``peak_noise.py``, ``feature_ablation.py``,
  ``held_out_seeds.py``), checked: ``(args, task, steps, seeds)`` (``seeds`` the list of
  them), with ``MODE`` set as this benchmark runs that task."""
  global MODE
  parser = argparse.ArgumentParser(description=doc.split("\n")[0])
  parser.add_argument("--task", default="deep_mlp")
  parser.add_argument("--peak", type=float, default=0.01, help="the tuned peak (its README row)")
  parser.add_argument("--seeds", type=int, default=seeds)
  parser.add_argument("--first-seed", type=int, default=first_seed,
                      help="the seeds are first-seed ... first-seed + seeds - 1")
  args = parser.parse_args()
  if args.peak <= 0 or args.seeds < 1 or args.first_seed < 0:
    parser.error("--peak must be > 0, --seeds >= 1 and --first-seed >= 0")
  steps = STEPS.get(args.task)
  if steps is None:
    parser.error(f"--task must be one of {', '.join(STEPS)}")
  MODE = "map" if args.task in SEQUENTIAL else "vmap"
  return args, get_task(args.task), steps, list(range(args.first_seed,
                                                      args.first_seed + args.seeds))


def main():
  global MODE
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--tasks", default="digits,regression,charlm,autoencoder,deep_mlp")
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--charlm-seeds", type=int, default=2,
                      help="seeds of charlm, the costliest task on a CPU")
  parser.add_argument("--deep-mlp-seeds", type=int, default=24,
                      help="seeds of deep_mlp, whose single seeds range 0.1-30x tuned for "
                      "every method (benchmarks/README.md, item 19): fewer do not rank it")
  parser.add_argument("--out", default="benchmarks/results/learned_controller")
  parser.add_argument("--long-task", default="regression",
                      help="the task of the horizon-extrapolation run ('' to skip)")
  parser.add_argument("--resume", action="store_true",
                      help="keep the tasks already in OUT/results.json (a run of the same "
                      "code and seeds) and run only the others; the summary covers all")
  args = parser.parse_args()
  os.makedirs(args.out, exist_ok=True)
  seeds = list(range(args.seeds))
  print(f"# jax {jax.__version__}, optax {optax.__version__}, {jax.default_backend()} "
        f"({jax.devices()[0].device_kind}), {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; seeds {seeds}", flush=True)
  start_time = time.perf_counter()
  results = {}
  if args.resume and os.path.exists(os.path.join(args.out, "results.json")):
    with open(os.path.join(args.out, "results.json")) as f:
      results = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    print(f"# resumed: {', '.join(results)} read from {args.out}/results.json", flush=True)
  for name in args.tasks.split(","):
    if name in results:
      continue
    MODE = "map" if name in SEQUENTIAL else "vmap"
    task, steps = get_task(name), STEPS[name]
    seeds = list(range({"charlm": args.charlm_seeds, "deep_mlp": args.deep_mlp_seeds}.get(
        name, args.seeds)))
    t0 = time.perf_counter()
    peak, tuned, grid = tune(task, steps, seeds)
    base = float(np.mean(tuned["final"]))
    base_held = float(np.mean(tuned["held_out"]))
    target = 1.10 * base
    tuned_steps = float(np.median([steps_to_target(l, target) for l in tuned["losses"]]))
    row = {"peak": peak, "grid": grid, "tuned_final": base, "tuned_held_out": base_held,
           "tuned_steps_to_target": tuned_steps, "steps": steps, "seeds": len(seeds),
           "methods": {}}
    lrs = [peak * s for s in STARTS]
    for method in METHODS:
      which = (list(range(len(lrs))) if method in ALL_STARTS else [0] if method in NO_START
               else list(COMMON))
      out = runs(task, lambda lr, m=method: build(m, lr, steps), [lrs[i] for i in which],
                 seeds, steps)
      if method in NO_START:  # no starting rate: the same runs in every column
        which = list(range(len(lrs)))
        out = {k: np.repeat(v, len(which), 0) for k, v in out.items()}
      cells = [None] * len(lrs)
      for j, i in enumerate(which):
        final, held = out["final"][j], out["held_out"][j]
        seed_ratios = final / tuned["final"]  # each seed against tuned on the same seed
        cells[i] = {
            "ratio": float(np.mean(final)) / base, "held_out_ratio": float(np.mean(held))
            / base_held, "diverged": int(out["diverged"][j].sum()),
            "seed_ratios": seed_ratios.tolist(),
            "gmean_ratio": seed_by_seed(seed_ratios),
            "steps_to_target": float(np.median([steps_to_target(l, target)
                                                for l in out["losses"][j]]))}
      row["methods"][method] = cells
      if method == "learned (given rate)":
        row["learned_lrs"] = out["lrs"].mean(1).tolist()
      if method == "learned":
        row["estimate_lrs"] = out["lrs"][0].mean(0).tolist()
        learned_out = out
    # Ablations of the learned controller (no starting rate: one column) on the cheap tasks.
    idx = [0] if name in ABLATION_TASKS else []
    reset = idx and runs(task, lambda lr: lrjax.learned_controller(
        adamw, every=1, total_steps=steps, reset_hidden=True), [lrs[i] for i in idx], seeds,
        steps)
    new_seeds = [s + 100 for s in seeds]
    closed = idx and runs(task, lambda lr: build("learned", lr, steps), [lrs[i] for i in idx],
                          new_seeds, steps)
    open_loop = []
    for j, i in enumerate(idx):
      trace = jnp.asarray(learned_out["lrs"][i, 0], jnp.float32)  # seed 0's trace
      o = runs(task, lambda lr, tr=trace: optax.inject_hyperparams(optax.adamw)(
          learning_rate=lambda count: tr[jnp.minimum(count, steps - 1)],
          weight_decay=WEIGHT_DECAY), [0.0], new_seeds, steps)
      open_loop.append(float(np.mean(o["final"][0])) / base)
    abl = {"learned": [row["methods"]["learned"][i]["ratio"] for i in idx],
           "reset_hidden": [float(np.mean(reset["final"][j])) / base for j in range(len(idx))],
           "closed_loop_new_seeds": [float(np.mean(closed["final"][j])) / base
                                     for j in range(len(idx))],
           "open_loop_new_seeds": open_loop}
    row["ablations"] = abl
    row["seconds"] = time.perf_counter() - t0
    results[name] = row
    print(f"\n## {name}: tuned warmup-cosine peak {peak:.2g}, final training loss {base:.4g} "
          f"({row['seconds']:.0f} s)", flush=True)
    print("| method | " + " | ".join(f"×{s:.3g}" for s in STARTS) + " |")
    for method, cells in row["methods"].items():
      print(f"| {method} | " + " | ".join(
          "–" if c is None else f"{c['ratio']:.2f}" if math.isfinite(c["ratio"]) else "div"
          for c in cells) + " |", flush=True)
    print(f"ablations {json.dumps(abl)}", flush=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
      json.dump(results, f, indent=1, default=float)

  if args.long_task:
    name = args.long_task
    MODE = "vmap"
    task = get_task(name)
    t0 = time.perf_counter()
    peak, tuned, _ = tune(task, LONG_STEPS, seeds[:2])
    base = float(np.mean(tuned["final"]))
    long = {"steps": LONG_STEPS, "peak": peak, "tuned_final": base}
    for known in (True, False):
      out = runs(task, lambda lr, k=known: build("learned", lr, LONG_STEPS, total_steps=k),
                 [peak], seeds[:2], LONG_STEPS)  # no starting rate: one run
      long["known" if known else "unknown"] = float(np.mean(out["final"][0])) / base
    out = runs(task, lambda lr: build("constant", lr, LONG_STEPS), [peak / 10, peak, peak * 10],
               seeds[:2], LONG_STEPS)
    long["constant"] = [float(np.mean(out["final"][i])) / base for i in range(3)]
    long["seconds"] = time.perf_counter() - t0
    results["_long"] = long
    print(f"\n## horizon {LONG_STEPS} on {name} ({long['seconds']:.0f} s): {json.dumps(long)}")

  # The summary over tasks.
  names = [n for n in results if not n.startswith("_")]
  print("\n## Summary over tasks × starts")
  print("| method | within 1.10× | worst ratio | median ratio | diverged runs | "
        "median held-out ratio | AlgoPerf score |")
  print("|---|---:|---:|---:|---:|---:|---:|")
  cells_steps = {}
  for n in names:
    for i in COMMON:
      cells_steps[f"{n}@{STARTS[i]:.3g}"] = {m: results[n]["methods"][m][i]["steps_to_target"]
                                             for m in METHODS}
  scores = report.profile_score(cells_steps)
  summary = {}
  for m in METHODS:
    cells = [results[n]["methods"][m][i] for n in names for i in COMMON]
    ratios = np.asarray([c["ratio"] for c in cells])
    g = np.asarray([c["gmean_ratio"] for c in cells])  # each cell judged seed by seed
    summary[m] = dict(within=float(np.mean(ratios <= 1.10)), worst=float(np.max(ratios)),
                      median=float(np.median(ratios)),
                      diverged=int(sum(c["diverged"] for c in cells)),
                      held_out=float(np.median([c["held_out_ratio"] for c in cells])),
                      score=scores[m], gmean_within=float(np.mean(g <= 1.10)),
                      gmean_worst=float(np.max(g)), gmean_median=float(np.median(g)),
                      worst_seed=float(max(max(c["seed_ratios"]) for c in cells)))
    s = summary[m]
    runs_total = sum(results[n]["seeds"] for n in names) * len(COMMON)
    print(f"| {m} | {s['within']:.0%} | {s['worst']:.3g} | {s['median']:.3g} | "
          f"{s['diverged']}/{runs_total} | {s['held_out']:.3g} | {s['score']:.3f} |")
  print("\n## The same cells judged seed by seed: the geometric mean over seeds of each seed's "
        "final loss ÷ tuned's on that seed")
  print("| method | within 1.10× | worst | median | worst single seed |")
  print("|---|---:|---:|---:|---:|")
  for m in METHODS:
    s = summary[m]
    print(f"| {m} | {s['gmean_within']:.0%} | {s['gmean_worst']:.3g} | "
          f"{s['gmean_median']:.3g} | {s['worst_seed']:.3g} |")
  print("\n## Every start, for the methods run at all six")
  print("| method | within 1.10× | worst ratio | median ratio | diverged runs |")
  print("|---|---:|---:|---:|---:|")
  for m in ALL_STARTS:
    cells = [c for n in names for c in results[n]["methods"][m]]
    ratios = np.asarray([c["ratio"] for c in cells])
    summary[m + " (all starts)"] = dict(within=float(np.mean(ratios <= 1.10)),
                                        worst=float(np.max(ratios)),
                                        median=float(np.median(ratios)))
    print(f"| {m} | {np.mean(ratios <= 1.10):.0%} | {np.max(ratios):.3g} | "
          f"{np.median(ratios):.3g} | {sum(c['diverged'] for c in cells)} |")
  results["_summary"] = summary
  results["_seconds"] = time.perf_counter() - start_time
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f, indent=1, default=float)
  plot(results, names, args.out)
  print(f"\nwrote {args.out}/results.json and lr_traces.png in "
        f"{results['_seconds'] / 60:.1f} min")


def plot(results, names, out):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names) + 1.6, 3.2), squeeze=False)
  colors = plt.cm.viridis(np.linspace(0, 0.9, len(STARTS)))
  for ax, n in zip(axes[0], names):
    row = results[n]
    for i, s in enumerate(STARTS):
      ax.plot(np.asarray(row["learned_lrs"][i]), color=colors[i], lw=0.8,
              label=f"given rate: tuned ×{s:.3g}")
    ax.plot(np.asarray(row["estimate_lrs"]), color="C3", lw=2, label="no rate given (default)")
    ax.axhline(row["peak"], color="k", ls=":", lw=1, label="tuned peak")
    ax.set_yscale("log")
    ax.set_title(f"{n}", fontsize=10)
    ax.set_xlabel("update")
  axes[0][0].set_ylabel("learning rate (mean of seeds)")
  handles, labels = axes[0][0].get_legend_handles_labels()  # beside the plots, not on a trace
  fig.legend(handles, labels, fontsize=7, loc="center right")
  fig.suptitle("learned controller: LR traces, its own estimate and six given rates",
               fontsize=10)
  fig.tight_layout(rect=(0, 0, 1 - 1.6 / (3.6 * len(names) + 1.6), 1))
  fig.savefig(os.path.join(out, "lr_traces.png"), dpi=110)


if __name__ == "__main__":
  main()
