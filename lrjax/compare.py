"""``lrjax compare``: train a task under many schedules and report which trains fastest."""

from __future__ import annotations

import csv
import json
import os
import sys
from typing import Callable

import numpy as np
import optax

import lrjax

DEFAULT_SCHEDULES = ("constant", "cosine_decay", "warmup_cosine_decay", "wsd", "one_cycle",
                     "reduce_on_plateau", "greedy", "optax.contrib.schedule_free_adamw")


def _pure(steps: int, peak: float) -> dict:
  w = max(steps // 10, 1)
  return {
      "constant": lambda: lrjax.constant(peak),
      "linear": lambda: lrjax.linear(peak, 0.0, steps),
      "polynomial": lambda: lrjax.polynomial(peak, 0.0, 2.0, steps),
      "exponential_decay": lambda: lrjax.exponential_decay(peak, steps, 0.01),
      "step_decay": lambda: lrjax.step_decay(peak, max(steps // 3, 1), 0.1),
      "multistep_decay": lambda: lrjax.multistep_decay(peak, [steps // 2, 3 * steps // 4]),
      "inverse_time_decay": lambda: lrjax.inverse_time_decay(peak, w, 1.0),
      "inverse_sqrt": lambda: lrjax.inverse_sqrt(peak, w),
      "cosine_decay": lambda: lrjax.cosine_decay(peak, steps),
      "warmup": lambda: lrjax.warmup(lrjax.constant(peak), w),
      "warmup_cosine_decay": lambda: lrjax.warmup_cosine_decay(0.0, peak, w, steps),
      "wsd": lambda: lrjax.wsd(peak, w, max(steps - w - steps // 5, 0), max(steps // 5, 1)),
      "cyclic": lambda: lrjax.cyclic(peak / 10, peak, max(steps // 8, 1)),
      "cosine_restarts": lambda: lrjax.cosine_restarts(peak, max(steps // 7, 1), 2.0),
      "one_cycle": lambda: lrjax.one_cycle(peak, max(steps, 4)),
      "piecewise_constant": lambda: lrjax.piecewise_constant(
          [steps // 2, 3 * steps // 4], [peak, peak / 10, peak / 100]),
      "piecewise_linear": lambda: lrjax.piecewise_linear([0, w, steps], [0.0, peak, 0.0]),
      "join": lambda: lrjax.join([lrjax.linear(0.0, peak, w),
                                  lrjax.cosine_decay(peak, max(steps - w, 1))], [w]),
      "scale": lambda: lrjax.scale(lrjax.cosine_decay(1.0, steps), peak),
      "clip": lambda: lrjax.clip(lrjax.cosine_decay(peak, steps), min_value=peak / 100),
      "product": lambda: lrjax.product(lrjax.warmup(lrjax.constant(1.0), w),
                                       lrjax.cosine_decay(peak, steps)),
      "swa_schedule": lambda: lrjax.swa_schedule(lrjax.cosine_decay(peak, steps), peak / 10,
                                                 3 * steps // 4, w),
  }


def optimizers(steps: int, peak: float, weight_decay: float = 1e-4) -> dict:
  """Name -> a zero-argument builder of the optax transformation to train with."""
  adamw = lambda lr: optax.adamw(lr, weight_decay=weight_decay)  # noqa: E731
  inject = lambda sched: optax.inject_hyperparams(optax.adamw)(  # noqa: E731
      learning_rate=sched, weight_decay=weight_decay)
  table: dict[str, Callable[[], optax.GradientTransformation]] = {
      name: (lambda b=build: inject(b())) for name, build in _pure(steps, peak).items()}
  window = max(steps // 20, 5)
  probe = max(steps // 50, 3)
  table.update({
      "reduce_on_plateau": lambda: inject(lrjax.reduce_on_plateau(peak, 0.5, 2, window=window)),
      "greedy": lambda: inject(lrjax.greedy(peak, patience=window, window=window,
                                            max_value=10 * peak)),
      "window_decay": lambda: inject(lrjax.window_decay(peak, window=max(steps // 10, 3))),
      "window_search": lambda: lrjax.window_search(
          adamw, peak, window=max(steps // 4, 3 * probe + 1), probe_steps=probe),
      "hypergradient": lambda: lrjax.hypergradient(adamw, init_value=peak, hyper_lr=1e-7),
      "optax.warmup_cosine_decay_schedule": lambda: inject(
          optax.warmup_cosine_decay_schedule(0.0, peak, max(steps // 10, 1), steps)),
      "optax.contrib.reduce_on_plateau": lambda: optax.chain(
          adamw(peak), optax.contrib.reduce_on_plateau(factor=0.5, patience=2,
                                                       accumulation_size=window)),
      "optax.contrib.schedule_free_adamw": lambda: optax.contrib.schedule_free_adamw(
          peak, warmup_steps=max(steps // 10, 1), weight_decay=weight_decay),
      "optax.contrib.prodigy": lambda: optax.contrib.prodigy(1.0, weight_decay=weight_decay),
  })
  return table


def _progress(i: int, total: int, label: str) -> None:
  width = 30
  filled = int(width * i / total)
  sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {i}/{total} {label:<56}")
  sys.stderr.flush()
  if i == total:
    sys.stderr.write("\n")


def steps_to_target(result, target: float, higher_is_better: bool):
  """The first evaluated step whose metric reaches ``target``, or None."""
  hit = result.metric >= target if higher_is_better else result.metric <= target
  return int(result.steps[np.argmax(hit)]) if hit.any() else None


def run(task_name: str, names, steps: int, seeds: int, peak: float, out: str,
        eval_every: int, progress: bool = True) -> dict:
  """Trains every (schedule, seed), writes JSON, CSV and PNGs to ``out``, returns the summary."""
  from lrjax import tasks
  task = tasks.get_task(task_name)
  table = optimizers(steps, peak)
  runs = {}
  total, i = len(names) * seeds, 0
  for name in names:
    for seed in range(seeds):
      if progress:
        _progress(i, total, f"{task_name}: {name}, seed {seed}")
      runs.setdefault(name, []).append(tasks.train(task, table[name](), steps, seed, eval_every))
      i += 1
  if progress:
    _progress(total, total, "done")
  summary = {"task": task_name, "metric": task.metric, "target": task.target,
             "higher_is_better": task.higher_is_better, "steps": steps, "seeds": seeds,
             "peak_lr": peak, "schedules": {}}
  for name, results in runs.items():
    finals = np.array([r.metric[-1] for r in results])
    hits = [steps_to_target(r, task.target, task.higher_is_better) for r in results]
    summary["schedules"][name] = {
        "final_metric_mean": float(finals.mean()), "final_metric_std": float(finals.std()),
        "steps_to_target": hits,
        "wall_time_mean": float(np.mean([r.wall_time for r in results])),
        "curves": [{k: getattr(r, k).tolist() for k in ("steps", "train_loss", "eval_loss",
                                                          "metric", "lrs")} for r in results]}
  _write(summary, out)
  return summary


def format_table(summary: dict) -> str:
  better = max if summary["higher_is_better"] else min
  rows = summary["schedules"]
  best = better(rows, key=lambda n: rows[n]["final_metric_mean"])
  lines = [f"task {summary['task']}: {summary['metric']} after {summary['steps']} steps, "
           f"{summary['seeds']} seed(s), peak lr {summary['peak_lr']:g}; target "
           f"{summary['target']:g}",
           f"| schedule | final {summary['metric']} (mean ± std) | steps to target | wall s |",
           "|---|---:|---:|---:|"]
  for name, row in sorted(rows.items(), key=lambda kv: kv[1]["final_metric_mean"],
                          reverse=summary["higher_is_better"]):
    hits = [h for h in row["steps_to_target"] if h is not None]
    reached = (f"{np.mean(hits):.0f} ({len(hits)}/{len(row['steps_to_target'])})"
               if hits else "not reached")
    mark = " (best)" if name == best else ""
    lines.append(f"| {name}{mark} | {row['final_metric_mean']:.4f} ± "
                 f"{row['final_metric_std']:.4f} | {reached} | {row['wall_time_mean']:.1f} |")
  return "\n".join(lines)


def _write(summary: dict, out: str) -> None:
  os.makedirs(out, exist_ok=True)
  with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(summary, f, indent=1)
  with open(os.path.join(out, "results.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["schedule", "seed", "step", "train_loss", "eval_loss", "metric", "lr"])
    for name, row in summary["schedules"].items():
      for seed, c in enumerate(row["curves"]):
        for k in range(len(c["steps"])):
          w.writerow([name, seed, c["steps"][k], c["train_loss"][k], c["eval_loss"][k],
                      c["metric"][k], c["lrs"][k]])
  from lrjax.plotting import _pyplot
  matplotlib, plt = _pyplot()
  matplotlib.use("Agg", force=False)
  for key, ylabel, fname, log in (("eval_loss", "held-out loss", "loss_curves.png", True),
                                  ("metric", summary["metric"], "metric_curves.png", False),
                                  ("lrs", "learning rate (at each evaluation)", "lr_curves.png",
                                   True)):
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for name, row in summary["schedules"].items():
      steps = row["curves"][0]["steps"]
      values = np.mean([c[key] for c in row["curves"]], axis=0)
      if np.all(np.isnan(values)):
        continue
      ax.plot(steps, values, label=name, linewidth=1.5)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if log:
      ax.set_yscale("log")
    ax.set_title(f"{summary['task']}: {ylabel} (mean over {summary['seeds']} seed(s))")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize="small", ncol=2,
              frameon=False)
    fig.savefig(os.path.join(out, fname), bbox_inches="tight")
    plt.close(fig)
