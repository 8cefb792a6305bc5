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

import concurrent.futures
import dataclasses
import functools
import importlib
import math
import os
import sys
import time
from typing import Any, Callable, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax.bench import report, tasks, unroll
from lrjax.schedules._base import Schedule, build_preset, preset_names
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


def _schedule(name: str, steps: int, peak: Any, signal: str, evaluations: int):
  schedule = build_preset(name, steps, peak)
  if signal == "val" and isinstance(schedule, StatefulSchedule):
    schedule = build_preset(name, steps, peak, signal="observe",
                            **val_settings(name, evaluations))
  return schedule

DEFAULT_SCHEDULES = ("constant", "cosine_decay", "warmup_cosine_decay", "wsd", "one_cycle",
                     "reduce_on_plateau", "greedy", "learned", "optax.contrib.schedule_free_adamw")

# Methods that choose their own rate and take no peak: one run per seed, whatever the peaks.
PEAK_FREE = frozenset({"learned", "optax.contrib.prodigy"})


def _adamw_at(schedule: Any, weight_decay: float) -> optax.GradientTransformation:
  """AdamW whose learning rate is ``schedule``, kept in its state (``inject_hyperparams``)."""
  return optax.inject_hyperparams(optax.adamw)(learning_rate=schedule,
                                               weight_decay=weight_decay)


def _optax_warmup_cosine(steps: int) -> Callable[[Any], Callable[[Any], Any]]:
  """``peak -> schedule``: Optax's warmup-cosine (a tenth warmup from 0) at ``peak``.

  Optax checks its peak with a Python comparison, so a traced peak scales a unit schedule.
  """
  unit = optax.warmup_cosine_decay_schedule(0.0, 1.0, max(steps // 10, 1), steps)
  return lambda peak: lambda count: peak * unit(count)


def builders(steps: int, weight_decay: float = 1e-4, signal: str = "train",
             evaluations: int = 10) -> dict[str, Callable[[Any], optax.GradientTransformation]]:
  """Name -> ``build(peak)``: the optax transformation to train with at peak rate ``peak``.

  ``peak`` may be a traced scalar: ``lrjax.bench.unroll.population`` builds every run of a
  grid of peaks inside one compiled program. For a stateful method the peak is its starting
  rate; the ``PEAK_FREE`` methods ignore it. ``signal="val"``: the stateful schedules decide on
  held-out evaluations (``evaluations`` of them in the run) fed by ``lrjax.observe``.
  """
  adamw = lambda lr: optax.adamw(lr, weight_decay=weight_decay)  # noqa: E731

  def preset(name: str, peak: Any) -> optax.GradientTransformation:
    return _adamw_at(_schedule(name, steps, peak, signal, evaluations), weight_decay)

  table: dict[str, Callable[[Any], optax.GradientTransformation]] = {
      name: functools.partial(preset, name) for name in preset_names()}
  window = max(steps // 20, 5)
  probe = max(steps // 50, 3)
  warmup = max(steps // 10, 1)
  optax_cosine = _optax_warmup_cosine(steps)
  table.update({
      "window_search": lambda peak: window_search(
          adamw, peak, window=max(steps // 4, 3 * probe + 1), probe_steps=probe),
      "hypergradient": lambda peak: hypergradient(adamw, init_value=peak, hyper_lr=1e-7),
      # Untuned, as a user runs it: the shipped weights over their own estimate of the rate.
      "learned": lambda peak: learned_controller(adamw, total_steps=steps),
      # Given a rate: the shipped weights started at the peak (a grid of peaks runs each).
      "learned_from_peak": lambda peak: learned_controller(adamw, init_value=peak,
                                                           total_steps=steps),
      "optax.warmup_cosine_decay_schedule": lambda peak: _adamw_at(optax_cosine(peak),
                                                                   weight_decay),
      "optax.contrib.reduce_on_plateau": lambda peak: optax.chain(
          adamw(peak), optax.contrib.reduce_on_plateau(factor=0.5, patience=2,
                                                       accumulation_size=window)),
      "optax.contrib.schedule_free_adamw": lambda peak: optax.contrib.schedule_free_adamw(
          peak, warmup_steps=warmup, weight_decay=weight_decay),
      "optax.contrib.prodigy": lambda peak: optax.contrib.prodigy(1.0,
                                                                  weight_decay=weight_decay),
  })
  return table


def pure_schedules(steps: int) -> dict[str, Callable[[Any], Callable[[Any], Any]]]:
  """Name -> ``schedule(peak)`` for the methods whose rate depends on the update count alone.

  The pure presets (``lrjax.Schedule``s) and Optax's warmup-cosine: ``lrjax compare`` trains all
  of these in one program (``shared_builder``), since only their rate differs.
  """
  out: dict[str, Callable[[Any], Callable[[Any], Any]]] = {
      name: functools.partial(build_preset, name, steps) for name in preset_names()
      if isinstance(build_preset(name, steps, 1.0), Schedule)}
  out["optax.warmup_cosine_decay_schedule"] = _optax_warmup_cosine(steps)
  return out


def shared_builder(schedules: Sequence[Callable[[Any], Callable[[Any], Any]]],
                   weight_decay: float = 1e-4) -> Callable[[Any], optax.GradientTransformation]:
  """``build((index, peak))``: AdamW at ``schedules[index](peak)``, the index a traced value.

  The rate of every update is ``lax.switch(index, ...)`` over the schedules' values, so one
  compiled program trains any of them: the pure schedules of ``lrjax compare`` share it.
  """
  def build(hyper: Any) -> optax.GradientTransformation:
    index, peak = hyper
    branches = [lambda count, f=f(peak): jnp.asarray(f(count), jnp.float32) for f in schedules]
    return _adamw_at(lambda count: jax.lax.switch(index, branches, count), weight_decay)
  return build


def check_peaks(peaks: Any) -> list[float]:
  """``peaks`` (a number or several) as a sorted list; a ``ValueError`` (saying what is wrong,
  for the caller to name the argument) unless they are finite, > 0, distinct and not empty."""
  grid = [float(p) for p in np.atleast_1d(np.asarray(peaks, dtype=float))]
  if not grid or not all(math.isfinite(p) and p > 0 for p in grid):
    raise ValueError("must be finite numbers > 0")
  if len(set(grid)) != len(grid):
    raise ValueError("names a peak twice")
  return sorted(grid)


def check_schedules(names: Sequence[str]) -> None:
  """A ``ValueError`` unless ``names`` are known (``builders``), distinct and not empty."""
  known = builders(100)
  unknown = [n for n in names if n not in known]
  if unknown or not names:
    raise ValueError(f"unknown schedule {', '.join(map(repr, unknown)) or '(none given)'}; "
                     f"known: {', '.join(sorted(known))}")
  twice = sorted({n for n in names if list(names).count(n) > 1})
  if twice:
    raise ValueError(f"names a schedule twice: {', '.join(twice)}")


def optimizers(steps: int, peak: float, weight_decay: float = 1e-4, signal: str = "train",
               evaluations: int = 10) -> dict:
  """Name -> a zero-argument builder of the optax transformation to train with at ``peak``.

  ``builders`` with the peak given; see there.
  """
  return {name: functools.partial(build, peak)
          for name, build in builders(steps, weight_decay, signal, evaluations).items()}


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
        "val_finals": [float("nan") if r.val_loss is None else float(r.val_loss[-1])
                       for r in results],
        "diverged_seeds": int(sum(r.diverged for r in results)),
        "steps_to_target": hits,
        "wall_time_mean": float(np.mean([r.wall_time for r in results])),
        "curves": [{**{k: getattr(r, k).tolist() for k in ("steps", "train_loss", "eval_loss",
                                                             "metric", "lrs", "lr_every_step")},
                    "initial_eval_loss": r.initial_eval_loss} for r in results]}
    if all(np.all(np.isnan(r.lr_every_step)) for r in results):
      hidden.append(name)
  return {"schedules": rows, "not_in_lr_plot": hidden}


def steps_to_target(result, target: Optional[float], higher_is_better: bool):
  """The first evaluated step whose metric reaches ``target``, or None (also for no target)."""
  if target is None:
    return None
  hit = result.metric >= target if higher_is_better else result.metric <= target
  return int(result.steps[np.argmax(hit)]) if hit.any() else None


def best_peak(rows: Sequence[dict]) -> int:
  """The index of the peak whose runs end at the lowest mean validation loss.

  A peak with a diverged seed never wins one that has none; when every peak diverged, the
  lowest peak (the first) is reported, diverged.
  """
  def score(row):
    val = np.asarray(row["val_finals"], float)
    return math.inf if row["diverged_seeds"] or not np.all(np.isfinite(val)) else val.mean()
  scores = [score(r) for r in rows]
  return int(np.argmin(scores)) if np.isfinite(min(scores)) else 0


def tune_grid(peak: float, n: int) -> list[float]:
  """``n`` peaks evenly spaced in log from ``peak / 10`` to ``peak * 10`` (``[peak]`` for one).

  Example:
    >>> [round(p, 6) for p in tune_grid(1e-3, 5)]
    [0.0001, 0.000316, 0.001, 0.003162, 0.01]
  """
  if n < 1:
    raise ValueError(f"tune_grid: n must be >= 1, got {n}")
  return [peak] if n == 1 else [float(peak * 10.0 ** e) for e in np.linspace(-1.0, 1.0, n)]


def _memory_available() -> Optional[int]:
  """Free bytes on the default device: the accelerator's limit less its use, or free RAM."""
  device = jax.devices()[0]
  stats = device.memory_stats() if device.platform != "cpu" else None
  if stats and "bytes_limit" in stats:
    return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
  try:
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  except (ValueError, OSError, AttributeError):
    return None


def _memory_needed(compiled) -> Optional[int]:
  try:
    m = compiled.memory_analysis()
  except Exception:  # noqa: BLE001  # a backend without the analysis
    return None
  if m is None:
    return None
  return int(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes)


def _members(peaks: Sequence[float], seeds: int) -> tuple[np.ndarray, np.ndarray]:
  """Every (peak, seed) run as two arrays: the peak of each run and its seed."""
  return (np.repeat(np.asarray(peaks, np.float32), seeds),
          np.tile(np.arange(seeds, dtype=np.int32), len(peaks)))


def _padded(tree: Any, batch: int) -> Any:
  """Every array of ``tree`` (one entry per run) padded with copies of its last to fill a batch."""
  def pad(a):
    a = np.asarray(a)
    return np.concatenate([a, np.repeat(a[-1:], (-len(a)) % batch, axis=0)])
  return jax.tree.map(pad, tree)


def _compiler_options() -> Optional[dict]:
  """LLVM at -O1 on a CPU: the population programs compile about a third faster than at the
  default -O2 and run as fast (XLA's CPU backend keeps IEEE arithmetic at every level, so the
  numbers are the same). Elsewhere, and when JAX is told to skip most optimizations, none."""
  if jax.default_backend() != "cpu" or jax.config.read("jax_disable_most_optimizations"):
    return None
  return {"xla_backend_optimization_level": 1}


MEMORY_FRACTION = 0.8  # of the free memory, at most, for one schedule's program


def _lower(task, build, hypers: Any, seeds: np.ndarray, steps: int, eval_every: int,
           observe_eval_loss: bool, batch: int):
  """The population program traced and lowered (in the caller's thread and JAX context)."""
  args = _padded((hypers, seeds), batch)
  return unroll.population(task, build, steps, eval_every, observe_eval_loss,
                           batch).lower(*args), args


def _fits(compiled, task, batch: int) -> bool:
  """Whether ``compiled`` needs at most ``MEMORY_FRACTION`` of the free memory; a
  ``MemoryError`` when it does not and holds one run only."""
  need, free = _memory_needed(compiled), _memory_available()
  if need is None or free is None or need <= MEMORY_FRACTION * free:
    return True
  if batch == 1:
    raise MemoryError(f"lrjax compare: one run of task {task.name!r} needs "
                      f"{need / 2**30:.2f} GiB and {free / 2**30:.2f} GiB is free; use a "
                      "smaller model or batch, or fewer steps")
  return False


def _default_batch(members: int, batch_size: Optional[int]) -> int:
  return batch_size or (1 if jax.default_backend() == "cpu" else members)


def compile_population(task, build, hypers: Any, seeds: np.ndarray, steps: int,
                       eval_every: int, observe_eval_loss: bool = False,
                       batch_size: Optional[int] = None):
  """A population program, compiled, in batches that fit the free memory.

  ``hypers`` (what ``build`` takes: a peak, or any pytree) and ``seeds`` have one entry per run.
  ``batch_size`` (runs trained side by side under ``vmap``) defaults to 1 on a CPU (fastest
  there) and to every run on an accelerator; while the compiled program needs more than
  ``MEMORY_FRACTION`` of the free memory the batch is halved and the program compiled again.
  When one run alone does not fit, a ``MemoryError`` says how much it needs.

  Returns:
    ``(compiled, (hypers, seeds) padded to a multiple of the batch, batch_size)``.
  """
  batch = _default_batch(len(seeds), batch_size)
  while True:
    lowered, args = _lower(task, build, hypers, seeds, steps, eval_every, observe_eval_loss,
                           batch)
    compiled = lowered.compile(_compiler_options())
    if _fits(compiled, task, batch):
      return compiled, args, batch
    batch = max(1, batch // 2)


def _results(out: unroll.Evaluations, first: int, peaks: int, seeds: int, steps: int,
             eval_every: int, wall: float) -> list[list[unroll.TrainResult]]:
  """``results[peak][seed]`` of the runs ``first, first + 1, ...`` of a population's output."""
  at = np.minimum(np.arange(1, -(-steps // eval_every) + 1) * eval_every, steps)
  runs = []
  for p in range(peaks):
    row = []
    for s in range(seeds):
      m = first + p * seeds + s
      lr = np.asarray(out.lr[m], float)
      row.append(unroll.TrainResult(
          steps=at, train_loss=np.asarray(out.train_loss[m], float),
          eval_loss=np.asarray(out.eval_loss[m], float),
          metric=np.asarray(out.metric[m], float), lrs=lr[at - 1],
          wall_time=wall, initial_eval_loss=float(out.initial_eval_loss[m]),
          lr_every_step=lr, val_loss=np.asarray(out.val_loss[m], float)))
    runs.append(row)
  return runs


@dataclasses.dataclass(frozen=True)
class _Program:
  """The runs of one compiled program: every seed of every peak of ``names`` (name-major)."""
  names: tuple[str, ...]
  build: Callable[[Any], optax.GradientTransformation]
  hypers: Any  # one entry per run: a peak, or (schedule index, peak) for a shared program
  seeds: np.ndarray


def _programs(names: Sequence[str], table: dict, run_peaks: dict, seeds: int,
              steps: int) -> list[_Program]:
  """One program for all the pure schedules named (their rate is all that differs), one for
  each other method."""
  pure = pure_schedules(steps)
  shared = [n for n in names if n in pure]
  programs = []
  if len(shared) > 1:
    peaks, seed_arr = zip(*(_members(run_peaks[n], seeds) for n in shared))
    index = np.concatenate([np.full(len(p), i, np.int32) for i, p in enumerate(peaks)])
    programs.append(_Program(tuple(shared), shared_builder([pure[n] for n in shared]),
                             (index, np.concatenate(peaks)), np.concatenate(seed_arr)))
  for name in names:
    if len(shared) < 2 or name not in shared:
      programs.append(_Program((name,), table[name], *_members(run_peaks[name], seeds)))
  return sorted(programs, key=lambda p: names.index(p.names[0]))


def resolve_task(task: Union[str, tasks.Task]) -> tasks.Task:
  """A bundled task's name, ``"module:function"`` (a function returning a ``Task``), or a ``Task``."""
  if isinstance(task, tasks.Task):
    return task
  if ":" not in task:
    return tasks.get_task(task)
  module_name, _, attr = task.partition(":")
  added = os.getcwd() not in sys.path
  if added:  # as ``python -m`` does: the current folder's modules import
    sys.path.insert(0, os.getcwd())
  try:
    module = importlib.import_module(module_name)
  except ImportError as e:
    raise ValueError(f"--task {task!r}: cannot import {module_name!r} ({e})") from None
  finally:
    if added:
      sys.path.remove(os.getcwd())
  make = getattr(module, attr, None)
  if make is None:
    raise ValueError(f"--task {task!r}: module {module_name!r} has no {attr!r}")
  built = make() if callable(make) else make
  if not isinstance(built, tasks.Task):
    raise ValueError(f"--task {task!r}: {attr} gave a {type(built).__name__}, not an "
                     "lrjax.bench.Task")
  return built


def _train_all(task, programs: Sequence[_Program], run_peaks, seeds, steps, eval_every,
               observe_eval_loss, batch_size, progress):
  """Each program's population, compiled while the previous program runs.

  Tracing and lowering stay in this thread (its JAX context applies); only XLA's compilation
  runs in the worker. Returns ``({name: results[peak][seed]}, {name: seconds})``; a shared
  program's seconds are split evenly between its schedules.
  """
  bar = Progress(len(programs), enabled=progress)
  results, timing = {}, {}

  def start(program):
    batch = _default_batch(len(program.seeds), batch_size)
    lowered, args = _lower(task, program.build, program.hypers, program.seeds, steps,
                           eval_every, observe_eval_loss, batch)
    began = time.perf_counter()
    job = pool.submit(lambda: (lowered.compile(_compiler_options()),
                               time.perf_counter() - began))
    return job, args, batch

  with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
    pending = start(programs[0])
    for i, program in enumerate(programs):
      job, args, batch = pending
      (compiled, compile_s) = job.result()
      if not _fits(compiled, task, batch):  # halve the batch until it fits, here
        began = time.perf_counter()
        compiled, args, _ = compile_population(task, program.build, program.hypers,
                                               program.seeds, steps, eval_every,
                                               observe_eval_loss, max(1, batch // 2))
        compile_s += time.perf_counter() - began
      if i + 1 < len(programs):
        pending = start(programs[i + 1])
      label = f"{task.name}: {', '.join(program.names)}"
      bar.begin(label)
      began = time.perf_counter()
      out = jax.device_get(compiled(*args))
      run_s = time.perf_counter() - began
      first, share = 0, len(program.names)
      for name in program.names:
        n_peaks = len(run_peaks[name])
        results[name] = _results(out, first, n_peaks, seeds, steps, eval_every,
                                 run_s / len(program.seeds))
        first += n_peaks * seeds
        timing[name] = {"compile_s": compile_s / share, "run_s": run_s / share,
                        "program": list(program.names)}
      bar.finish(label)
  return results, timing


def run(task: Union[str, tasks.Task], names: Sequence[str], steps: int, seeds: int,
        peak: Union[float, Sequence[float]], out: Optional[str], eval_every: int,
        progress: bool = True, signal: str = "train", rank_by: str = "train_loss",
        batch_size: Optional[int] = None) -> dict:
  """Trains every (schedule, peak, seed): one compiled program per schedule (the pure schedules
  share one); returns the summary.

  Each program runs its whole population while the next one compiles. With several peaks
  each schedule is reported at the peak of lowest mean final validation loss
  (``task.validate``), its other peaks kept in ``summary["by_peak"]``; the validation split is
  evaluated only then or for ``signal="val"``. Writes JSON, CSV and PNGs to ``out`` unless it is
  ``None``.
  """
  task = resolve_task(task)
  peaks = [float(p) for p in np.atleast_1d(np.asarray(peak, dtype=float))]
  if len(peaks) > 1 and task.validate is None:
    raise ValueError(f"task {task.name!r} has no validation split (Task.validate), so there is "
                     "nothing to choose a peak on; give it one or compare at one peak")
  if len(peaks) == 1 and signal != "val":  # nothing reads the validation loss: skip its work
    task = dataclasses.replace(task, validate=None)
  evaluations = -(-steps // eval_every)
  table = builders(steps, signal=signal, evaluations=evaluations)
  run_peaks = {n: peaks[:1] if n in PEAK_FREE else peaks for n in names}
  programs = _programs(list(names), table, run_peaks, seeds, steps)
  compiles_before = unroll.compilations()
  results, timing = _train_all(task, programs, run_peaks, seeds, steps, eval_every,
                               signal == "val", batch_size, progress)
  summary: dict[str, Any] = {"task": task.name, "metric": task.metric, "target": task.target,
             "higher_is_better": task.higher_is_better, "steps": steps, "seeds": seeds,
             "peak_lr": peaks[0] if len(peaks) == 1 else None, "peaks": peaks,
             "signal": signal, "rank_by": rank_by, "schedules": {}, "by_peak": {}}
  hidden = []
  for name in names:
    per_peak = [summarize({name: r}, task) for r in results[name]]
    rows = [s["schedules"][name] for s in per_peak]
    i = best_peak(rows) if len(rows) > 1 else 0
    summary["by_peak"][name] = [
        {"peak": None if name in PEAK_FREE else p,
         **{k: row[k] for k in ("val_finals", "train_finals", "finals", "diverged_seeds")}}
        for p, row in zip(run_peaks[name], rows)]
    summary["schedules"][name] = {"peak": None if name in PEAK_FREE else run_peaks[name][i],
                                  **rows[i], **timing[name]}
    hidden += per_peak[i]["not_in_lr_plot"]
  summary["not_in_lr_plot"] = hidden
  summary["programs"] = {"schedules": len(names), "programs": len(programs),
                         "shared": next((list(p.names) for p in programs if len(p.names) > 1),
                                        []),
                         "compiled": unroll.compilations() - compiles_before,
                         "compile_s": float(sum(t["compile_s"] for t in timing.values())),
                         "run_s": float(sum(t["run_s"] for t in timing.values()))}
  if out is not None:
    report.write(summary, out)
  return summary


def compare(task: Union[str, tasks.Task], schedules: Sequence[str] = DEFAULT_SCHEDULES, *,
            peaks: Union[float, Sequence[float]] = 3e-2, seeds: int = 3, steps: int = 300,
            eval_every: int = 25, signal: str = "train", rank_by: str = "train_loss",
            out: Optional[str] = None, progress: bool = False) -> report.Report:
  """Trains ``task`` under every schedule, seed and peak; what ``lrjax compare`` prints.

  Each schedule trains ``optax.adamw`` (weight decay 1e-4) for ``steps`` updates from
  ``seeds`` initialisations; all the runs of a schedule (every seed and every peak) are one
  compiled program, its held-out evaluations inside (every ``eval_every`` updates), and the
  pure schedules share one program (``shared_builder``). With several ``peaks`` each schedule
  is reported at the peak whose runs end at the lowest mean validation loss
  (``task.validate``), on the test split (``task.evaluate``). Ranks say only what the seeds
  support (``lrjax.bench.report``).

  Args:
    task: a ``Task`` (your model: see ``lrjax.bench.Task``), a bundled task's name
      (``"digits"``, ``"regression"``, ``"charlm"``) or ``"module:function"``.
    schedules: names from ``lrjax list`` (any preset, the LR-owning transforms, the Optax
      baselines).
    peaks: the peak (or starting) learning rate, or several (``runner.tune_grid`` makes a log
      grid).
    seeds: runs per schedule and peak.
    steps: updates per run.
    eval_every: updates between held-out evaluations.
    signal: ``"train"`` (adaptive schedules decide on every update's training loss) or
      ``"val"`` (on each evaluation's validation loss, fed by ``lrjax.observe``).
    rank_by: ``"train_loss"`` (the final training loss) or ``"metric"`` (the test metric).
    out: a folder to write ``results.json``, CSVs, curves and plots to; ``None`` for none.
    progress: show a progress bar on stderr.

  Returns:
    A ``Report``: ``print(report)`` gives the table, ``report.summary`` every number.

  Example:
    >>> from lrjax.bench import compare
    >>> result = compare("regression", ["constant", "wsd"], peaks=[1e-3, 1e-2], seeds=2,
    ...                  steps=40, eval_every=20)
    >>> sorted(result.summary["schedules"]), result.summary["programs"]["schedules"]
    (['constant', 'wsd'], 2)
    >>> result.summary["schedules"]["wsd"]["peak"] in (1e-3, 1e-2)
    True
  """
  check_schedules(list(schedules))
  try:
    grid = check_peaks(peaks)
  except ValueError as e:
    raise ValueError(f"peaks {e}, got {peaks!r}") from None
  for label, value in (("seeds", seeds), ("steps", steps), ("eval_every", eval_every)):
    if not isinstance(value, (int, np.integer)) or value < 1:
      raise ValueError(f"{label} must be a positive integer, got {value!r}")
  if signal not in SIGNAL_SOURCES:
    raise ValueError(f"signal must be one of {SIGNAL_SOURCES}, got {signal!r}")
  if rank_by not in RANK_BY:
    raise ValueError(f"rank_by must be one of {RANK_BY}, got {rank_by!r}")
  return report.Report(run(task, list(schedules), steps, seeds, grid, out, eval_every,
                           progress=progress, signal=signal, rank_by=rank_by))
