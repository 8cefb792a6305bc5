"""Planning with a fitted law: the schedule it predicts to end lowest, and tables of schedules."""

from __future__ import annotations

import functools
from typing import Any, Mapping

import numpy as np

import jax
import jax.numpy as jnp
import optax

from lrjax.plan._curves import as_curves
from lrjax.plan._lbfgs import minimise
from lrjax.plan._laws import Law, lrs_array, metrics, saturation, x64


def final_loss(law: str, params: jax.Array, eta: jax.Array, peak_index: Any,
               decay: Any) -> jax.Array:
  """The law's loss after the last update of the per-update rates ``eta`` (every term exact)."""
  n = eta.shape[0]
  s1 = jnp.sum(eta)
  gap = jnp.concatenate([jnp.zeros(1, eta.dtype), eta[:-1] - eta[1:]])
  k = jnp.arange(n)
  if law == "annealing":
    l0, a, alpha, c = (params[i] for i in range(4))
    gap = jnp.where(k > peak_index, gap, 0.0)
    s2 = jnp.sum(gap * -jnp.expm1((n - k) * jnp.log(decay)) / (1.0 - decay))
    return l0 + a * s1 ** (-alpha) - c * s2
  l0, a, alpha, b, c, beta, gamma = (params[i] for i in range(7))
  tail = jnp.cumsum(eta[::-1])[::-1]                       # S_k = sum_{tau >= k} eta_tau
  positive = eta > 0
  x = jnp.exp(jnp.log(jnp.where(tail > 0, tail, 1.0))
              - gamma * jnp.log(jnp.where(positive, eta, 1.0)))
  g = jnp.where(positive, saturation(x, c, beta), jnp.where(tail > 0, 1.0, 0.0))
  return l0 + a * s1 ** (-alpha) - b * jnp.sum(jnp.where(k >= 1, gap * g, 0.0))


ADAM_LEARNING_RATE = 0.05


def _knot_steps(total_steps: int, warmup_steps: int, knots: int) -> np.ndarray:
  return np.unique(np.round(np.linspace(warmup_steps, total_steps - 1, knots)).astype(np.int64))


def _knot_values(z: jax.Array, peak: Any) -> jax.Array:
  """Non-increasing values in (0, peak]: the first is ``peak``, each next one lower by a share
  of ``softmax(z)`` (its last entry is the share never spent)."""
  drops = jax.nn.softmax(z)[:-1]
  return peak * jnp.concatenate([jnp.ones(1, z.dtype), 1.0 - jnp.cumsum(drops)])


@functools.partial(jax.jit, static_argnames=("law", "total_steps"))
def _plan(z0, params, knot_steps, peak, init_value, warmup, decay, tol, max_iters, adam_steps, *,
          law: str, total_steps: int):
  """The planned knot values and their predicted loss (one program per law and length: the
  iteration counts are arguments)."""
  t = jnp.arange(total_steps, dtype=z0.dtype)
  ramp = init_value + (peak - init_value) * t / jnp.maximum(warmup, 1)

  def rates(z):
    after = jnp.interp(t, knot_steps.astype(z.dtype), _knot_values(z, peak))
    return jnp.where(t < warmup, ramp, after)

  def fun(z):
    return final_loss(law, params, rates(z), warmup, decay)

  # Adam first: its per-coordinate scaling moves the logits of small drops, whose gradients
  # are tiny (L-BFGS alone stalls there); then L-BFGS to the optimum.
  adam = optax.adam(ADAM_LEARNING_RATE)

  def adam_step(_, carry):
    z, state = carry
    updates, state = adam.update(jax.grad(fun)(z), state)
    return optax.apply_updates(z, updates), state

  z0, _ = jax.lax.fori_loop(0, adam_steps, adam_step, (z0, adam.init(z0)))
  z, _ = minimise(fun, z0, max_iters, tol, atol=1e-30)
  return _knot_values(z, peak), fun(z)


def optimize(law: Law, total_steps: int, peak_value: float, warmup_steps: int = 0, *,
             init_value: float = 0.0, knots: int = 100, adam_steps: int = 1000,
             max_iters: int = 1000, tol: float = 1e-12):
  r"""The schedule a fitted law predicts to end lowest, among non-increasing ones after warmup.

  The rate ramps linearly from ``init_value`` to ``peak_value`` over ``warmup_steps``, then
  follows a piecewise-linear curve through ``knots`` evenly spaced points that starts at
  ``peak_value`` and never rises:

  .. math::
    v_0 = P, \qquad v_i = P\Big(1 - \sum_{j < i} w_j\Big), \qquad w = \mathrm{softmax}(z)

  (the last share of ``w`` is never spent, so every rate lies in :math:`(0, P]`). The law's
  predicted loss after update ``total_steps - 1`` (every term of its sums exact, float64) is
  minimised over :math:`z` from a cosine decay to ``P/100``: ``adam_steps`` of Adam (rate 0.05),
  whose per-coordinate scaling moves the logits of small drops (L-BFGS alone stalls on them,
  e.g. 1.3154 against 1.3035 on the charlm law of ``benchmarks/plan.py``), then L-BFGS
  (``optax.lbfgs``). Luo et al. find the multi-power law's optimum is WSD-like: a long stable
  stage, then a decay faster than cosine's to near zero.

  Args:
    law: a fitted :class:`Law`.
    total_steps: updates in the run (> ``warmup_steps``).
    peak_value: ``P`` > 0, the highest rate (usually the peak the law was fitted at: a law
      extrapolates poorly to rates it never saw).
    warmup_steps: linear warmup length (>= 0).
    init_value: the rate of update 0 in the warmup.
    knots: points of the planned curve after warmup (>= 2).
    adam_steps: Adam steps before L-BFGS (>= 0).
    max_iters: L-BFGS iterations at most.
    tol: stop when an iteration improves the predicted loss by less than ``tol`` times it.

  Returns:
    An :func:`lrjax.piecewise_linear` schedule (``to_config()`` saves it); its predicted final
    loss is ``law.final_loss((schedule, total_steps))``.

  Example:
    >>> import lrjax
    >>> law = lrjax.plan.Law("multi_power", dict(L0=3.0, A=0.5, alpha=0.5, B=400.0, C=2.0,
    ...                                          beta=0.6, gamma=0.6))
    >>> planned = lrjax.plan.optimize(law, 2000, 3e-4, warmup_steps=200, knots=20)
    >>> cosine = lrjax.warmup_cosine_decay(0.0, 3e-4, 200, 2000)
    >>> law.final_loss((planned, 2000)) < law.final_loss((cosine, 2000))
    True

  References:
    Luo et al., `A Multi-Power Law for Loss Curve Prediction Across Learning Rate Schedules
    <https://arxiv.org/abs/2503.12811>`_, ICLR 2025 (section 5, optimal schedules).
  """
  from lrjax.schedules import piecewise_linear
  if not isinstance(law, Law):
    raise ValueError(f"lrjax.plan.optimize: law must be a lrjax.plan.Law (from "
                     f"lrjax.plan.fit), got {type(law).__name__}")
  for name, value, low in (("total_steps", total_steps, 2), ("warmup_steps", warmup_steps, 0),
                           ("knots", knots, 2), ("max_iters", max_iters, 1),
                           ("adam_steps", adam_steps, 0)):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
      raise ValueError(f"lrjax.plan.optimize: {name} must be an int >= {low}, got "
                       f"{name}={value!r}")
  if warmup_steps >= total_steps - 1:
    raise ValueError(f"lrjax.plan.optimize: warmup_steps must be < total_steps - 1, got "
                     f"warmup_steps={warmup_steps}, total_steps={total_steps}")
  if not (np.isfinite(peak_value) and peak_value > 0):
    raise ValueError(f"lrjax.plan.optimize: peak_value must be finite and > 0, got "
                     f"peak_value={peak_value!r}")
  if not (np.isfinite(init_value) and 0 <= init_value <= peak_value):
    raise ValueError(f"lrjax.plan.optimize: init_value must be in [0, peak_value], got "
                     f"init_value={init_value!r}")
  steps = _knot_steps(total_steps, warmup_steps, knots)
  frac = (steps - steps[0]) / max(steps[-1] - steps[0], 1)
  start = 0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * frac))   # cosine to 1% of the peak
  shares = np.concatenate([-np.diff(start), [start[-1]]])
  z0 = np.log(np.maximum(shares, 1e-12))
  with x64():
    values, _ = _plan(jnp.asarray(z0), jnp.asarray(law.vector), jnp.asarray(steps),
                      jnp.asarray(float(peak_value)), jnp.asarray(float(init_value)),
                      jnp.asarray(float(warmup_steps)), jnp.asarray(law.decay),
                      jnp.asarray(float(tol)), jnp.asarray(int(max_iters)),
                      jnp.asarray(int(adam_steps)), law=law.law, total_steps=int(total_steps))
    values = np.asarray(values)
  bounds = ([0] if warmup_steps > 0 else []) + steps.tolist()
  vals = ([float(init_value)] if warmup_steps > 0 else []) + values.tolist()
  return piecewise_linear(bounds, vals)


def compare(law: Law, schedules: Mapping[str, Any], total_steps: int) -> dict[str, float]:
  """The law's predicted loss after ``total_steps`` updates of each schedule, lowest first.

  Args:
    law: a fitted :class:`Law`.
    schedules: ``{name: schedule or array of every update's rate}``.
    total_steps: updates in the run (> 0).

  Returns:
    ``{name: predicted final loss}``, sorted from the lowest.

  Example:
    >>> import lrjax
    >>> law = lrjax.plan.Law("multi_power", dict(  # the source's fit of its 25M model
    ...     L0=3.04, A=0.525, alpha=0.508, B=363.8, C=2.066, beta=0.583, gamma=0.641))
    >>> table = lrjax.plan.compare(law, {
    ...     "constant": lrjax.constant(3e-4),
    ...     "cosine": lrjax.cosine_decay(3e-4, 24000)}, 24000)
    >>> list(table)  # lowest predicted loss first
    ['cosine', 'constant']
  """
  if not isinstance(total_steps, (int, np.integer)) or total_steps < 1:
    raise ValueError(f"lrjax.plan.compare: total_steps must be an int >= 1, got "
                     f"total_steps={total_steps!r}")
  if not schedules:
    raise ValueError("lrjax.plan.compare: schedules must hold at least one schedule")
  out = {}
  for name, schedule in schedules.items():
    lrs = (schedule, total_steps) if callable(schedule) else schedule
    values = lrs_array("compare", lrs)
    if values.size != total_steps:
      raise ValueError(f"lrjax.plan.compare: {name!r} has {values.size} rates, not "
                       f"total_steps={total_steps}")
    out[str(name)] = law.final_loss(values)
  return dict(sorted(out.items(), key=lambda kv: kv[1]))


def evaluate(law: Law, curves: Any) -> list[dict[str, Any]]:
  """How well ``law`` predicts logged curves: per curve R², mean and worst relative error.

  Args:
    law: a fitted :class:`Law`.
    curves: ``(lrs, steps, losses)`` tuples or :class:`Curve` s.

  Returns:
    One dict per curve: ``name``, ``r2``, ``mean_rel_error``, ``worst_rel_error``,
    ``prediction`` (the predicted losses at the logged steps).

  Example:
    >>> import numpy as np, lrjax
    >>> law = lrjax.plan.Law("annealing", dict(L0=2.0, A=0.5, alpha=0.5, C=10.0))
    >>> lrs, steps = np.full(1000, 1e-2), np.arange(99, 1000, 100)
    >>> row, = lrjax.plan.evaluate(law, [(lrs, steps, law.predict(lrs, steps) * 1.01)])
    >>> round(row["mean_rel_error"], 4)
    0.0099
  """
  checked = as_curves("evaluate", curves)
  preds = law.predict_curves(checked)
  return [{"name": c.name, **metrics(p, c.losses), "prediction": p}
          for c, p in zip(checked, preds)]
