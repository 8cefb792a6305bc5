"""The report of ``lrjax compare``: the table, JSON, CSV and the curves."""

from __future__ import annotations

import csv
import json
import os

import numpy as np


def format_table(summary: dict) -> str:
  """The Markdown table of a ``runner.run`` summary, best final metric first."""
  better = max if summary["higher_is_better"] else min
  rows = summary["schedules"]
  best = better(rows, key=lambda n: rows[n]["final_metric_mean"])
  lines = [f"task {summary['task']}: {summary['metric']} after {summary['steps']} steps, "
           f"{summary['seeds']} seed(s), peak lr {summary['peak_lr']:g}; target "
           f"{summary['target']:g}"
           + ("; adaptive schedules decide on the held-out loss"
              if summary.get("signal") == "val" else ""),
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


def write(summary: dict, out: str) -> None:
  """Writes ``results.json``, ``results.csv`` and the loss / metric / LR plots to ``out``."""
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
  from lrjax.plotting import close, line_plot
  for key, ylabel, fname, log in (("eval_loss", "held-out loss", "loss_curves.png", True),
                                  ("metric", summary["metric"], "metric_curves.png", False),
                                  ("lrs", "learning rate (at each evaluation)", "lr_curves.png",
                                   True)):
    lines = {}
    for name, row in summary["schedules"].items():
      values = np.mean([c[key] for c in row["curves"]], axis=0)
      if not np.all(np.isnan(values)):
        lines[name] = (row["curves"][0]["steps"], values)
    ax = line_plot(lines, xlabel="step", ylabel=ylabel, log_y=log,
                   title=f"{summary['task']}: {ylabel} (mean over {summary['seeds']} seed(s))",
                   styles={name: {"linewidth": 1.5} for name in lines}, ncol=2,
                   path=os.path.join(out, fname))
    close(ax)
