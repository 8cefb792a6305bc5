"""The runner of ``lrjax compare``: the optimizers it can train with, the runs, the statistics.

Every schedule in lrjax's one registry that has a preset (``lrjax.create`` /
``schedule_names``; pure and stateful alike) is trained through
``optax.inject_hyperparams(optax.adamw)``; the transforms that own their
learning rate and the Optax baselines are added by name.

``signal="val"`` builds the stateful schedules with ``signal="observe"`` and
settings counted in evaluations (a decision per held-out evaluation, as the
per-epoch habit of PyTorch and Keras), and ``train`` feeds each evaluation's
held-out loss to them with ``lrjax.observe``. The transforms and the Optax
baselines keep deciding on the training loss (see ``lrjax.observe`` for why).
"""

from __future__ import annotations

import functools
import sys
import time
from typing import Any, Callable

import numpy as np
import optax

from lrjax.bench import report, tasks, unroll
from lrjax.schedules._base import build_preset, preset_names
from lrjax.stateful import StatefulSchedule
from lrjax.transforms import hypergradient, learned_controller, window_search

# What the stateful schedules in ``lrjax compare`` decide on (``--signal``): every update's
# training loss, or the held-out loss at each evaluation. (The ``signal`` argument of a stateful
# schedule, "update" or "observe", is ``lrjax.stateful._core.SIGNALS``.)
SIGNAL_SOURCES = ("train", "val")
RANK_BY = ("train_loss", "metric")


def val_settings(name: str, evaluations: int) -> dict:
  """Settings of a stateful preset counted in held-out evaluations (``signal="val"``)."""
  return {"reduce_on_plateau": dict(window=1, patience=1),
          "greedy": dict(window=2, patience=1),
          "window_decay": dict(window=max(evaluations // 4, 3))}.get(name, {})


def _schedule(name: str, steps: int, peak: float, signal: str, evaluations: int):
  schedule = build_preset(name, steps, peak)
  if signal == "val" and isinstance(schedule, StatefulSchedule):
    schedule = build_preset(name, steps, peak, signal="observe",
                            **val_settings(name, evaluations))
  return schedule

DEFAULT_SCHEDULES = ("constant", "cosine_decay", "warmup_cosine_decay", "wsd", "one_cycle",
                     "reduce_on_plateau", "greedy", "learned", "optax.contrib.schedule_free_adamw")


def optimizers(steps: int, peak: float, weight_decay: float = 1e-4, signal: str = "train",
               evaluations: int = 10) -> dict:
  """Name -> a zero-argument builder of the optax transformation to train with.

  ``signal="val"``: the stateful schedules decide on held-out evaluations
  (``evaluations`` of them in the run) fed by ``lrjax.observe``.
  """
  adamw = lambda lr: optax.adamw(lr, weight_decay=weight_decay)  # noqa: E731
  inject = lambda sched: optax.inject_hyperparams(optax.adamw)(  # noqa: E731
      learning_rate=sched, weight_decay=weight_decay)
  def preset(name: str) -> optax.GradientTransformation:
    return inject(_schedule(name, steps, peak, signal, evaluations))

  table: dict[str, Callable[[], optax.GradientTransformation]] = {
      name: functools.partial(preset, name) for name in preset_names()}
  window = max(steps // 20, 5)
  probe = max(steps // 50, 3)
  table.update({
      "window_search": lambda: window_search(
          adamw, peak, window=max(steps // 4, 3 * probe + 1), probe_steps=probe),
      "hypergradient": lambda: hypergradient(adamw, init_value=peak, hyper_lr=1e-7),
      # Untuned, as a user runs it: the shipped weights over their own estimate of the rate
      # (the peak is not used).
      "learned": lambda: learned_controller(adamw, total_steps=steps),
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


class Progress:
  """Progress over ``total`` runs on stderr: a ``rich`` bar with elapsed time and ETA on a
  terminal, one plain line per run otherwise (logs, CI; none with ``lines=False``), nothing
  when disabled. ``lrjax compare`` and ``lrjax meta-train`` both show it."""

  def __init__(self, total: int, enabled: bool = True, stream=None, lines: bool = True):
    self.total, self.enabled, self.done, self.lines = total, enabled, 0, lines
    self.stream = stream if stream is not None else sys.stderr
    self.start = time.perf_counter()
    self._bar = None
    if enabled and self.stream.isatty():
      try:
        from rich.console import Console
        from rich import progress as rp
      except ImportError:
        return
      self._bar = rp.Progress(rp.TextColumn("{task.description:<48}"), rp.BarColumn(),
                              rp.MofNCompleteColumn(), rp.TextColumn("elapsed"),
                              rp.TimeElapsedColumn(), rp.TextColumn("ETA"),
                              rp.TimeRemainingColumn(),
                              console=Console(file=self.stream), transient=False)
      self._task = self._bar.add_task("", total=total)
      self._bar.start()

  def begin(self, label: str) -> None:
    """Announces the run about to start."""
    if self._bar is not None:
      self._bar.update(self._task, description=label)

  def finish(self, label: str) -> None:
    """Counts one finished run."""
    self.done += 1
    if self._bar is not None:
      self._bar.update(self._task, advance=1)
      if self.done == self.total:
        self._bar.update(self._task, description="done")
        self._bar.stop()
    elif self.enabled and self.lines:
      elapsed = time.perf_counter() - self.start
      eta = elapsed / self.done * (self.total - self.done)
      self.stream.write(f"[{self.done}/{self.total}] {label} done; elapsed {elapsed:.0f} s, "
                        f"ETA {eta:.0f} s\n")
      self.stream.flush()


def steps_to_target(result, target: float, higher_is_better: bool):
  """The first evaluated step whose metric reaches ``target``, or None."""
  hit = result.metric >= target if higher_is_better else result.metric <= target
  return int(result.steps[np.argmax(hit)]) if hit.any() else None


def summarize(runs: dict, task) -> dict:
  """The per-schedule statistics of ``{name: [TrainResult per seed]}`` that the report reads."""
  rows, hidden = {}, []
  for name, results in runs.items():
    finals = np.array([r.metric[-1] for r in results], dtype=float)
    hits = [steps_to_target(r, task.target, task.higher_is_better) for r in results]
    rows[name] = {
        "final_metric_mean": float(finals.mean()), "final_metric_std": float(finals.std()),
        "finals": finals.tolist(),
        "train_finals": [float(r.train_loss[-1]) for r in results],
        "diverged_seeds": int(sum(r.diverged for r in results)),
        "steps_to_target": hits,
        "wall_time_mean": float(np.mean([r.wall_time for r in results])),
        "curves": [{**{k: getattr(r, k).tolist() for k in ("steps", "train_loss", "eval_loss",
                                                             "metric", "lrs", "lr_every_step")},
                    "initial_eval_loss": r.initial_eval_loss} for r in results]}
    if all(np.all(np.isnan(r.lr_every_step)) for r in results):
      hidden.append(name)
  return {"schedules": rows, "not_in_lr_plot": hidden}


def run(task_name: str, names, steps: int, seeds: int, peak: float, out: str,
        eval_every: int, progress: bool = True, signal: str = "train",
        rank_by: str = "train_loss") -> dict:
  """Trains every (schedule, seed), writes JSON, CSV and PNGs to ``out``, returns the summary."""
  task = tasks.get_task(task_name)
  evaluations = -(-steps // eval_every)
  table = optimizers(steps, peak, signal=signal, evaluations=evaluations)
  runs: dict[str, list[Any]] = {}
  bar = Progress(len(names) * seeds, enabled=progress)
  for name in names:
    for seed in range(seeds):
      label = f"{task_name}: {name}, seed {seed}"
      bar.begin(label)
      runs.setdefault(name, []).append(unroll.train(task, table[name](), steps, seed, eval_every,
                                                    observe_eval_loss=signal == "val"))
      bar.finish(label)
  summary = {"task": task_name, "metric": task.metric, "target": task.target,
             "higher_is_better": task.higher_is_better, "steps": steps, "seeds": seeds,
             "peak_lr": peak, "signal": signal, "rank_by": rank_by, "schedules": {}}
  summary.update(summarize(runs, task))
  report.write(summary, out)
  return summary
