"""The report of ``lrjax compare``: honest ranks, the table, JSON, CSV and the curves.

Ranks say only what the seeds support. A schedule's rank is one plus the
number of schedules whose final metric is better **beyond noise**: their mean
differs by more than ``2 * sqrt(s_a**2 / n + s_b**2 / n)`` (two standard errors
of the difference, sample standard deviations over ``n`` seeds; about a 95%
test). Schedules within noise of each other share a rank, and "(best)" marks a
schedule only when it beats every other one beyond noise. A run that diverged
(``TrainResult.diverged``: a NaN or inf, or a final held-out loss above the one
at initialisation) is named as such and ranked after every schedule that did
not. With one seed there is no noise estimate, and the table says so.

``profile_score`` is the AlgoPerf score of several tasks: the area under each
schedule's performance profile of steps-to-target ratios over ``τ ∈ [1, 4]``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from typing import Mapping, Optional, Sequence

import numpy as np

NOISE_STANDARD_ERRORS = 2.0


def _better_beyond_noise(a: dict, b: dict, higher_is_better: bool, key: str) -> bool:
  """Whether row ``a``'s final values (``a[key]``, one per seed) beat ``b``'s beyond noise."""
  x, y = np.asarray(a[key], float), np.asarray(b[key], float)
  diff = x.mean() - y.mean()
  if not higher_is_better:
    diff = -diff
  if min(len(x), len(y)) < 2:
    return bool(diff > 0)
  se = math.sqrt(np.var(x, ddof=1) / len(x) + np.var(y, ddof=1) / len(y))
  return bool(diff > NOISE_STANDARD_ERRORS * se)


def criterion(summary: dict) -> tuple[str, bool, str]:
  """What ranks the rows: ``(row key, higher is better, label)``."""
  if summary.get("rank_by", "metric") == "train_loss":
    return "train_finals", False, "final training loss"
  return "finals", summary["higher_is_better"], f"final {summary['metric']}"


def rank(rows: Mapping[str, dict], higher_is_better: bool,
         key: str = "finals") -> dict[str, Optional[int]]:
  """``{name: rank}``: 1 + the schedules better beyond noise; ``None`` for a diverged row.

  Each row needs ``key`` (the final value of every seed: ``finals`` for the
  task's metric, ``train_finals`` for the training loss) and ``diverged_seeds``.

  Example:
    >>> rows = {"a": {"finals": [0.90, 0.91, 0.92], "diverged_seeds": 0},
    ...         "b": {"finals": [0.91, 0.92, 0.93], "diverged_seeds": 0},
    ...         "c": {"finals": [0.50, 0.51, 0.52], "diverged_seeds": 0},
    ...         "d": {"finals": [0.95, float("nan"), 0.1], "diverged_seeds": 1}}
    >>> rank(rows, higher_is_better=True)
    {'a': 1, 'b': 1, 'c': 3, 'd': None}
  """
  alive = {n: r for n, r in rows.items() if not r["diverged_seeds"]}
  ranks: dict[str, Optional[int]] = {}
  for name, row in rows.items():
    if name not in alive:
      ranks[name] = None
    else:
      ranks[name] = 1 + sum(_better_beyond_noise(other, row, higher_is_better, key)
                            for o, other in alive.items() if o != name)
  return ranks


def best(rows: Mapping[str, dict], higher_is_better: bool,
         key: str = "finals") -> Optional[str]:
  """The schedule that beats every other one beyond noise, or ``None`` (a tie, or no seeds)."""
  alive = {n: r for n, r in rows.items() if not r["diverged_seeds"]}
  for name, row in alive.items():
    others = [r for o, r in rows.items() if o != name]
    if others and all(o["diverged_seeds"] or _better_beyond_noise(row, o, higher_is_better, key)
                      for o in others):
      return name
  return None


def _order(rows: Mapping[str, dict], ranks: Mapping[str, Optional[int]],
           means: Mapping[str, float], higher: bool) -> list[str]:
  """Table order: by rank, then mean; diverged rows last."""
  sign = -1.0 if higher else 1.0

  def key(name):
    mean = means[name]
    return (ranks[name] is None, ranks[name] or 0, rows[name]["diverged_seeds"],
            sign * mean if np.isfinite(mean) else math.inf, name)

  return sorted(rows, key=key)


def format_table(summary: dict) -> str:
  """The Markdown table of a ``runner.run`` summary: ranked, ties shared, diverged runs last."""
  rows = summary["schedules"]
  field, higher, label = criterion(summary)
  ranks = rank(rows, higher, field)
  winner = best(rows, higher, field)
  means = {n: float(np.mean(rows[n][field])) for n in rows}
  order = _order(rows, ranks, means, higher)
  peaks = summary.get("peaks") or [summary["peak_lr"]]
  tuned = len(peaks) > 1
  at = (f"each schedule at its best of {len(peaks)} peak lrs "
        f"({', '.join(f'{p:g}' for p in peaks)}) by final validation loss" if tuned
        else f"peak lr {peaks[0]:g}")
  target = "no target" if summary["target"] is None else f"target {summary['target']:g}"
  timed = all("compile_s" in rows[n] for n in rows)
  lines = [f"task {summary['task']}: {summary['metric']} after {summary['steps']} steps, "
           f"{summary['seeds']} seed(s), {at}; {target}"
           + ("; adaptive schedules decide on the held-out loss"
              if summary.get("signal") == "val" else ""),
           "| rank | schedule | " + ("peak | " if tuned else "")
           + f"final training loss (mean ± std) | final {summary['metric']} "
           "(mean ± std) | steps to target | " + ("s (compile + run) |" if timed
                                                   else "wall s |"),
           "|---:|---|" + ("---:|" if tuned else "") + "---:|---:|---:|---:|"]
  for name in order:
    row = rows[name]
    hits = [h for h in row["steps_to_target"] if h is not None]
    reached = (f"{np.mean(hits):.0f} ({len(hits)}/{len(row['steps_to_target'])})"
               if hits else "not reached" if summary["target"] is not None else "—")
    if ranks[name] is None:
      name_cell = f"{name} (diverged in {row['diverged_seeds']}/{len(row['finals'])} seeds)"
      place = "—"
    else:
      name_cell = name + (" (best)" if name == winner else "")
      place = str(ranks[name])
    train = np.asarray(row["train_finals"], float)
    peak = ("— (own rate) | " if row.get("peak") is None else f"{row['peak']:.3g} | ") \
        if tuned else ""
    wall = (f"{row['compile_s']:.1f} + {row['run_s']:.1f}" if timed
            else f"{row['wall_time_mean']:.1f}")
    lines.append(f"| {place} | {name_cell} | {peak}{train.mean():.4g} ± {train.std():.2g} | "
                 f"{row['final_metric_mean']:.4f} ± {row['final_metric_std']:.4f} | {reached} | "
                 f"{wall} |")
  if summary["seeds"] < 2:
    lines.append(f"Ranked by the {label}. One seed: no noise estimate, so the ranks order the "
                 "values only; run --seeds 3 or more before trusting a difference.")
  else:
    lines.append(f"Ranked by the {label}: rank = 1 + the schedules better beyond noise (means "
                 f"more than {NOISE_STANDARD_ERRORS:g} standard errors apart); a shared rank is "
                 "a tie.")
  rank_of = {n: r for n, r in ranks.items() if r is not None}
  ranked = [n for n in order if n in rank_of]
  inverted = sorted({a for i, a in enumerate(ranked) for b in ranked[i + 1:]
                     if rank_of[a] < rank_of[b] and (means[b] > means[a] if higher
                                                 else means[b] < means[a])}, key=ranked.index)
  if inverted:
    lines.append(f"{', '.join(inverted)}: a better rank on a worse mean than a row below, because "
                 "their seeds spread so widely that they cannot be told from the better rows, "
                 "while that row is measurably behind.")
  tied = [n for n in order if ranks[n] == 1]
  if winner is None and len(tied) > 1:
    lines.append(f"No single best: {', '.join(tied)} are within noise of each other.")
  diverged = [n for n in order if ranks[n] is None]
  if diverged:
    lines.append(f"Diverged (a NaN/inf, or a final held-out loss above the initial one), ranked "
                 f"last: {', '.join(diverged)}.")
  if summary.get("not_in_lr_plot"):
    lines.append("Not in the LR plot (the optimizer state hides its rate): "
                 + ", ".join(summary["not_in_lr_plot"]) + ".")
  if tuned:
    lines.append("The peak is chosen on the validation split; the columns report the test "
                 "split and the training loss at that peak. peak_sensitivity.png shows every "
                 "peak.")
  programs = summary.get("programs")
  if programs:
    shared = programs.get("shared") or []
    lines.append(f"{programs['compiled']} compiled program(s) for {programs['schedules']} "
                 f"schedule(s), every seed{' and peak' if tuned else ''} of a schedule inside "
                 "its program" + (f"; {', '.join(shared)} share one (only their rate differs, "
                                  "chosen in the graph; the seconds are split between them)"
                                  if shared else "")
                 + f": compiling {programs['compile_s']:.0f} s, running "
                 f"{programs['run_s']:.0f} s.")
  return "\n".join(lines)


def profile_score(steps: Mapping[str, Mapping[str, float]], tau_max: float = 4.0) -> dict:
  """The AlgoPerf score: the area under each schedule's performance profile, in [0, 1].

  .. math::
    r_{s,t} = \\frac{T_{s,t}}{\\min_{s'} T_{s',t}}, \\quad
    \\rho_s(\\tau) = \\frac{1}{|T|} \\sum_t [r_{s,t} \\le \\tau], \\quad
    \\text{score}_s = \\frac{1}{\\tau_{max} - 1} \\int_1^{\\tau_{max}} \\rho_s(\\tau)\\, d\\tau

  where ``T`` is the steps to the task's target (``inf`` for a miss: it never
  counts). The integral of the step function is exact:
  ``mean_t max(0, τ_max - r) / (τ_max - 1)``.

  Args:
    steps: ``{task: {schedule: steps to target, inf for a miss}}``; every task
      names the same schedules.
    tau_max: the largest ratio that still counts (AlgoPerf: 4).

  Returns:
    ``{schedule: score}``: 1 is fastest on every task, 0 never within ``tau_max``.

  References:
    Dahl et al. 2023, "Benchmarking Neural Network Training Algorithms",
    https://arxiv.org/abs/2306.07179 (section 4.5).

  Example:
    >>> scores = profile_score({"t1": {"a": 100, "b": 200}, "t2": {"a": float("inf"), "b": 50}})
    >>> {k: round(v, 4) for k, v in scores.items()}  # a: (1 + 0) / 2, b: (2/3 + 1) / 2
    {'a': 0.5, 'b': 0.8333}
  """
  if not steps:
    raise ValueError("lrjax.bench.report.profile_score: no tasks given")
  names = sorted(next(iter(steps.values())))
  area = {n: 0.0 for n in names}
  for task, row in steps.items():
    if sorted(row) != names:
      raise ValueError(f"lrjax.bench.report.profile_score: task {task!r} names "
                       f"{sorted(row)}, the first task names {names}")
    fastest = min(row.values())
    for n in names:
      ratio = row[n] / fastest if math.isfinite(fastest) and row[n] > 0 else math.inf
      area[n] += max(0.0, tau_max - ratio) / (tau_max - 1)
  return {n: area[n] / len(steps) for n in names}


def median_steps_to_target(row: dict) -> float:
  """A schedule's median steps to target over seeds, a miss counting as ``inf``."""
  if row["diverged_seeds"]:
    return math.inf
  return float(np.median([math.inf if h is None else h for h in row["steps_to_target"]]))


def format_scores(summaries: Sequence[dict], tau_max: float = 4.0) -> str:
  """The AlgoPerf-style score table of several ``runner.run`` summaries."""
  steps = {s["task"]: {n: median_steps_to_target(r) for n, r in s["schedules"].items()}
           for s in summaries}
  scores = profile_score(steps, tau_max)
  lines = [f"AlgoPerf-style score over {len(summaries)} tasks (area under the performance "
           f"profile of steps-to-target ratios, τ in [1, {tau_max:g}]; a miss counts as ∞)",
           "| schedule | score | " + " | ".join(f"steps to target: {t}" for t in steps) + " |",
           "|---|---:|" + "---:|" * len(steps)]
  for name in sorted(scores, key=lambda n: (-scores[n], n)):
    cells = [("miss" if not math.isfinite(steps[t][name]) else f"{steps[t][name]:.0f}")
             for t in steps]
    lines.append(f"| {name} | {scores[name]:.3f} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Report:
  """What ``lrjax.bench.compare`` found: the summary ``lrjax compare`` prints and writes.

  ``summary`` is the JSON-ready dict of ``results.json``: per schedule (``summary
  ["schedules"][name]``) its chosen ``peak``, each seed's final training loss
  (``train_finals``), test metric (``finals``) and validation loss (``val_finals``; NaN
  when nothing reads it: one peak and ``signal="train"``),
  ``diverged_seeds``, ``steps_to_target``, ``curves``; every peak's finals in
  ``summary["by_peak"]``; the program count and times in ``summary["programs"]``.
  """
  summary: dict

  def table(self) -> str:
    """The ranked Markdown table (``format_table``)."""
    return format_table(self.summary)

  def ranks(self) -> dict[str, Optional[int]]:
    """``{schedule: rank}`` by the table's criterion; ``None`` for a diverged schedule."""
    field, higher, _ = criterion(self.summary)
    return rank(self.summary["schedules"], higher, field)

  def write(self, out: str) -> None:
    """Writes ``results.json``, the CSVs, ``curves/`` and the plots to folder ``out``."""
    write(self.summary, out)

  def __str__(self) -> str:
    return self.table()


def write(summary: dict, out: str) -> None:
  """Writes ``results.json``, ``results.csv``, ``lr_every_step.csv``, ``curves/`` and the plots
  to ``out``."""
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
  with open(os.path.join(out, "lr_every_step.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["schedule", "seed", "step", "lr"])
    for name, row in summary["schedules"].items():
      for seed, c in enumerate(row["curves"]):
        for k, lr in enumerate(c["lr_every_step"]):
          w.writerow([name, seed, k + 1, lr])
  write_law_curves(summary, os.path.join(out, "curves"))
  _plots(summary, out)


def write_law_curves(summary: dict, folder: str) -> list[str]:
  """Each run's held-out loss as an ``lrjax.plan`` curve, ``folder/SCHEDULE_seedK.csv``.

  The loss after ``n`` updates is logged at update ``n - 1`` (the law's convention: the loss
  once update ``t`` is applied), with every update's rate in the ``# lrs:`` line. A run whose
  rate is hidden (a transform that keeps none), whose loss is not finite and positive, or that
  ends inside its warmup is left out (``write_csv`` refuses it). Returns the paths written.
  """
  from lrjax.plan import write_csv
  os.makedirs(folder, exist_ok=True)
  written = []
  for name, row in summary["schedules"].items():
    for seed, c in enumerate(row["curves"]):
      safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
      path = os.path.join(folder, f"{safe}_seed{seed}.csv")
      try:
        write_csv(path, c["lr_every_step"], np.asarray(c["steps"]) - 1, c["eval_loss"])
      except ValueError:  # a hidden (NaN) rate, a diverged loss: no curve for a law
        continue
      written.append(path)
  return written


def _styles(names: Sequence[str]) -> dict[str, dict]:
  """One colour and dash per schedule, the same in every plot; equal curves stay visible."""
  colours = [f"C{i}" for i in range(10)]
  dashes = ["-", "--", "-.", ":"]
  return {n: {"color": colours[i % 10], "linestyle": dashes[i % 4], "linewidth": 1.6}
          for i, n in enumerate(names)}


def _plots(summary: dict, out: str) -> None:
  from lrjax.plotting import close, line_plot
  rows = summary["schedules"]
  style = _styles(list(rows))
  seeds = summary["seeds"]
  band_note = f"mean of {seeds} seeds, band: their range" if seeds > 1 else "one seed"
  for key, ylabel, fname, log in (("train_loss", "training loss (chunk mean)",
                                   "train_loss_curves.png", True),
                                  ("eval_loss", "held-out loss", "loss_curves.png", True),
                                  ("metric", summary["metric"], "metric_curves.png", False)):
    lines, bands, styles = {}, {}, {}
    for name, row in rows.items():
      values = np.array([c[key] for c in row["curves"]], dtype=float)
      label = name + (" (diverged)" if row["diverged_seeds"] else "")
      steps = row["curves"][0]["steps"]
      lines[label] = (steps, np.mean(values, axis=0))
      styles[label] = style[name]
      if seeds > 1:
        bands[label] = (steps, np.min(values, axis=0), np.max(values, axis=0))
    hlines = ([(f"target {summary['target']:g}", summary["target"], {"color": "black"})]
              if key == "metric" and summary["target"] is not None else [])
    ax = line_plot(lines, xlabel="step", ylabel=ylabel, log_y=log, bands=bands, hlines=hlines,
                   styles=styles,
                   title=f"{summary['task']}: {ylabel.split(' (')[0]}, {band_note}", ncol=2,
                   path=os.path.join(out, fname))
    close(ax)
  if len(summary.get("peaks") or []) > 1:
    _peak_plot(summary, out, style)
  lines = {}
  for name, row in rows.items():
    values = np.array([c["lr_every_step"] for c in row["curves"]], dtype=float)
    if not np.all(np.isnan(values)):
      lines[name] = (np.arange(1, values.shape[1] + 1), np.nanmean(values, axis=0))
  ax = line_plot(lines, xlabel="update", ylabel="learning rate", log_y=True, ncol=2,
                 styles=style,
                 title=f"{summary['task']}: learning rate after every update, mean of "
                       f"{seeds} seed(s)",
                 path=os.path.join(out, "lr_curves.png"),
                 note=("not drawn (the state hides its rate): "
                       + ", ".join(summary["not_in_lr_plot"])
                       if summary.get("not_in_lr_plot") else None))
  close(ax)


def _peak_plot(summary: dict, out: str, style: Mapping[str, dict]) -> None:
  """``peak_sensitivity.png``: each schedule's final validation loss against its peak."""
  from lrjax.plotting import close, line_plot
  peaks = np.asarray(summary["peaks"], float)
  lines, bands, styles = {}, {}, {}
  gaps = any(r["diverged_seeds"] for runs in summary["by_peak"].values() for r in runs)
  for name, runs in summary["by_peak"].items():
    val = np.array([r["val_finals"] for r in runs], float)  # (peaks, seeds)
    val[[bool(r["diverged_seeds"]) for r in runs]] = np.nan  # a diverged peak: a gap
    if runs[0]["peak"] is None:  # its own rate: the same runs at every peak
      label, x, val = f"{name} (own rate)", peaks[[0, -1]], np.repeat(val, 2, axis=0)
    else:
      label, x = name, np.array([r["peak"] for r in runs], float)
    chosen = summary["schedules"][name].get("peak")
    if chosen is not None:
      label += f" (best {chosen:.3g})"
    lines[label] = (x, val.mean(axis=1))
    bands[label] = (x, val.min(axis=1), val.max(axis=1))
    styles[label] = {**style[name], "marker": "o", "markersize": 3}
  seeds = summary["seeds"]
  ax = line_plot(lines, xlabel="peak learning rate", ylabel="final validation loss",
                 log_x=True, log_y=True, bands=bands if seeds > 1 else None, styles=styles,
                 ncol=2, title=f"{summary['task']}: final validation loss against the peak, "
                               + (f"mean of {seeds} seeds, band: their range" if seeds > 1
                                  else "one seed"),
                 note=("a gap: the runs at that peak diverged (NaN, inf, or worse than at "
                       "initialisation)" if gaps else None),
                 path=os.path.join(out, "peak_sensitivity.png"))
  close(ax)
