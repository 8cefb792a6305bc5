"""Logged loss curves: what a law is fitted to, read from and written to CSV.

A curve is ``(lrs, steps, losses)``: ``lrs[t]`` the rate of update ``t`` for every update from 0
(an array, or a schedule evaluated on ``0 .. steps[-1]``), ``steps`` the updates at which the loss
was logged (increasing), ``losses`` those losses (finite, > 0).

CSV format (the format of the public curves in the multi-power-law repository, plus the rates):
a header ``step,lr,loss`` and one row per logged loss. The laws need the rate of every update,
which a sparse log does not hold; it comes from, in this order: a first line
``# lrs: {JSON}`` holding an lrjax schedule config (``schedule.to_config()``) or a JSON list of
every update's rate, or a log with a row for every update from 0 (its ``lr`` column is then the
per-update rate).
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import numpy as np

import jax

LRS_PREFIX = "# lrs:"


class Curve(NamedTuple):
  """One logged run: the rate of every update and the losses logged at some updates.

  Attributes:
    lrs: float64 ``[n]``, the rate of update ``t`` for ``t = 0 .. n - 1``.
    steps: int64 ``[m]``, increasing updates at which the loss was logged, ``< n``.
    losses: float64 ``[m]``, the logged losses.
    name: a label (the file name for a curve read from CSV).
  """
  lrs: np.ndarray
  steps: np.ndarray
  losses: np.ndarray
  name: str = "curve"


# An lrjax schedule evaluated with the schedule an argument: one program per structure and length.
_evaluate = jax.jit(lambda schedule, steps: schedule(steps))


def rates(fn: str, lrs: Any, length: int) -> np.ndarray:
  """``lrs`` as float64 rates of updates ``0 .. length - 1`` (a schedule is evaluated there)."""
  if callable(lrs):
    from lrjax.stateful import StatefulSchedule
    if isinstance(lrs, StatefulSchedule):
      raise ValueError(f"lrjax.plan.{fn}: a stateful schedule's rate depends on the training "
                       "signal; give the rates it produced (an array) instead")
    from lrjax.schedules import Schedule
    steps = np.arange(length)
    values = np.asarray(_evaluate(lrs, steps) if isinstance(lrs, Schedule) else lrs(steps),
                        dtype=np.float64)
    if values.shape != (length,):
      raise ValueError(f"lrjax.plan.{fn}: the schedule returned shape {values.shape} for "
                       f"{length} steps")
  else:
    values = np.asarray(lrs, dtype=np.float64)
    if values.ndim != 1:
      raise ValueError(f"lrjax.plan.{fn}: lrs must be 1-D (one rate per update), got shape "
                       f"{values.shape}")
    if values.shape[0] < length:
      raise ValueError(f"lrjax.plan.{fn}: lrs holds {values.shape[0]} rates but the last "
                       f"logged step is {length - 1} (it needs the rate of every update up to it)")
  if not np.all(np.isfinite(values)) or np.any(values < 0):
    raise ValueError(f"lrjax.plan.{fn}: every rate must be finite and >= 0")
  return values


def as_curve(fn: str, curve: Any, index: int = 0) -> Curve:
  """Checks one ``(lrs, steps, losses)`` (or a :class:`Curve`) and returns it as a Curve."""
  if isinstance(curve, Curve):
    lrs, steps, losses, name = curve
  else:
    try:
      lrs, steps, losses = curve
    except (TypeError, ValueError):
      raise ValueError(f"lrjax.plan.{fn}: curve {index} must be (lrs, steps, losses), got "
                       f"{type(curve).__name__}") from None
    name = f"curve {index}"
  steps = np.asarray(steps)
  losses = np.asarray(losses, dtype=np.float64)
  where = f"lrjax.plan.{fn}: {name}"
  if steps.ndim != 1 or losses.ndim != 1 or steps.shape != losses.shape or steps.size == 0:
    raise ValueError(f"{where}: steps and losses must be 1-D of one length >= 1, got shapes "
                     f"{steps.shape} and {losses.shape}")
  if not np.issubdtype(steps.dtype, np.integer):
    if not np.all(np.asarray(steps) == np.round(steps)):
      raise ValueError(f"{where}: steps must be whole update counts")
  steps = steps.astype(np.int64)
  if steps[0] < 0 or np.any(np.diff(steps) <= 0):
    raise ValueError(f"{where}: steps must be >= 0 and strictly increasing")
  if not np.all(np.isfinite(losses)) or np.any(losses <= 0):
    raise ValueError(f"{where}: every loss must be finite and > 0 (the laws fit log-losses)")
  values = rates(fn, lrs, int(steps[-1]) + 1)
  cum = np.cumsum(values)
  if cum[steps[0]] <= 0:
    raise ValueError(f"{where}: the rates sum to 0 up to the first logged step {steps[0]}; "
                     "log from after the first update with a rate > 0")
  peak_at = int(np.argmax(values))
  if steps[-1] < peak_at:
    raise ValueError(f"{where}: the curve ends at step {steps[-1]}, inside the warmup (the "
                     f"rate first peaks at step {peak_at}); the laws need losses after it")
  return Curve(values, steps, losses, str(name))


def as_curves(fn: str, curves: Any) -> list[Curve]:
  if isinstance(curves, Curve) or (isinstance(curves, tuple) and len(curves) == 3
                                   and not isinstance(curves[0], (tuple, Curve))):
    curves = [curves]
  curves = list(curves)
  if not curves:
    raise ValueError(f"lrjax.plan.{fn}: curves must hold at least one curve, got none")
  return [as_curve(fn, c, i) for i, c in enumerate(curves)]


def read_csv(path: str, lrs: Any = None) -> Curve:
  """Reads a logged curve from a ``step,lr,loss`` CSV file.

  Args:
    path: the file. Its first line may be ``# lrs: {JSON schedule config}``.
    lrs: the rate of every update (an array or a schedule), when the file neither names its
      schedule nor logs every update.

  Returns:
    A :class:`Curve` named after the file.

  Example:
    >>> import os, tempfile, lrjax
    >>> path = os.path.join(tempfile.mkdtemp(), "run.csv")
    >>> lrjax.plan.write_csv(path, lrjax.constant(0.1), [9, 19], [2.0, 1.5])
    >>> curve = lrjax.plan.read_csv(path)
    >>> curve.steps.tolist(), round(float(curve.lrs[3]), 6)
    ([9, 19], 0.1)
  """
  import os
  with open(path) as f:
    lines = f.read().splitlines()
  header_lrs = None
  rows = []
  for i, line in enumerate(lines):
    text = line.strip()
    if not text:
      continue
    if text.startswith(LRS_PREFIX):
      try:
        header_lrs = json.loads(text[len(LRS_PREFIX):])
      except json.JSONDecodeError as e:
        raise ValueError(f"lrjax.plan.read_csv: {path} line {i + 1}: the '# lrs:' line is not "
                         f"JSON ({e.msg})") from None
      continue
    if text.startswith("#"):
      continue
    rows.append((i + 1, text))
  if not rows or [c.strip() for c in rows[0][1].split(",")][:3] != ["step", "lr", "loss"]:
    raise ValueError(f"lrjax.plan.read_csv: {path} must start with the header 'step,lr,loss'")
  steps, lr_column, losses = [], [], []
  for number, text in rows[1:]:
    cells = text.split(",")
    try:
      steps.append(int(float(cells[0])))
      lr_column.append(float(cells[1]))
      losses.append(float(cells[2]))
    except (ValueError, IndexError):
      raise ValueError(f"lrjax.plan.read_csv: {path} line {number}: expected step,lr,loss "
                       f"numbers, got {text!r}") from None
  steps_arr = np.asarray(steps, dtype=np.int64)
  if lrs is None and isinstance(header_lrs, list):
    lrs = np.asarray(header_lrs, dtype=np.float64)
  elif lrs is None and header_lrs is not None:
    from lrjax.schedules import from_config
    lrs = from_config(header_lrs)
  if lrs is None:
    if steps_arr.size and np.array_equal(steps_arr, np.arange(steps_arr.size)):
      lrs = np.asarray(lr_column)
    else:
      raise ValueError(f"lrjax.plan.read_csv: {path} logs {len(steps)} of "
                       f"{steps[-1] + 1 if steps else 0} updates and does not name its "
                       "schedule: the laws need the rate of every update. Add a first line "
                       "'# lrs: {schedule config JSON}' (lrjax.plan.write_csv writes it) or "
                       "pass lrs=")
  name = os.path.splitext(os.path.basename(path))[0]
  return as_curve("read_csv", Curve(lrs, steps_arr, np.asarray(losses), name))


def write_csv(path: str, lrs: Any, steps: Any, losses: Any) -> None:
  """Writes a logged curve as ``step,lr,loss`` CSV that :func:`read_csv` reads back.

  Args:
    path: the file to write.
    lrs: an lrjax schedule (its config goes in a ``# lrs:`` first line), or the array of every
      update's rate (a JSON list in that line, unless ``steps`` is every update ``0, 1, 2, ...``
      and the ``lr`` column holds every rate).
    steps: the logged updates.
    losses: the losses logged there.
  """
  curve = as_curve("write_csv", (lrs, steps, losses))
  lines = []
  if callable(lrs):
    if not hasattr(lrs, "to_config"):
      raise ValueError("lrjax.plan.write_csv: lrs must be an lrjax schedule (with to_config) "
                       "or an array of every update's rate")
    lines.append(f"{LRS_PREFIX} {json.dumps(lrs.to_config())}")
  elif not np.array_equal(curve.steps, np.arange(curve.steps.size)):
    lines.append(f"{LRS_PREFIX} {json.dumps(curve.lrs.tolist())}")
  lines.append("step,lr,loss")
  lines += [f"{s},{float(curve.lrs[s])!r},{l!r}" for s, l in zip(curve.steps.tolist(),
                                                                  curve.losses.tolist())]
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
