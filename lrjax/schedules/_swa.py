"""The SWA learning rate: follow a schedule, then anneal to a constant (PyTorch SWALR)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from lrjax import _validation as v
from lrjax._numerics import as_float
from lrjax.schedules._base import (Schedule, as_schedule, fraction, lerp, public, schedule_class,
                                   static, warmup_steps_for, create)
from lrjax.schedules._cosine import half_cosine


@schedule_class("swa_schedule")
class SWASchedule(Schedule):
  base: Schedule
  swa_value: Any
  start_step: Any
  anneal_steps: Any
  anneal: str = static(default="cos")

  def _value(self, t):
    start = as_float(self.start_step)
    frac = fraction(t - start, self.anneal_steps)
    alpha = 1 - half_cosine(frac) if self.anneal == "cos" else frac
    from_value = self.base(start)
    swa = lerp(from_value, as_float(self.swa_value), alpha)
    return jnp.where(t < start, self.base(t), swa)


@public(preset=lambda steps, peak: dict(
    base=create("cosine_decay", init_value=peak, decay_steps=steps), swa_value=peak / 10,
    start_step=3 * steps // 4, anneal_steps=warmup_steps_for(steps)))
def swa_schedule(base: Any, swa_value: jax.typing.ArrayLike, start_step: jax.typing.ArrayLike,
                 anneal_steps: jax.typing.ArrayLike, anneal: str = "cos") -> Schedule:
  r"""Follows ``base`` until ``start_step``, then anneals to ``swa_value`` and holds it.

  With :math:`k = t - s` steps into the SWA phase, :math:`E` = ``anneal_steps``
  and :math:`\eta_0 = \text{base}(s)`:

  .. math::
    \alpha = \tfrac12\left(1 - \cos \pi \min(1, k/E)\right) \text{ (cos)}
    \quad\text{or}\quad \min(1, k/E) \text{ (linear)}, \qquad
    \eta_t = \alpha\,\eta_{swa} + (1 - \alpha)\,\eta_0

  exactly PyTorch ``SWALR(swa_lr, anneal_epochs, anneal_strategy)`` started
  from the learning rate :math:`\eta_0` (step ``k`` = ``scheduler.step()``
  calls so far). Pair it with ``lrjax.swa(start_step, every)``.

  Args:
    base: the schedule before SWA (a float or a schedule).
    swa_value: the constant SWA learning rate.
    start_step: the step the annealing starts, >= 0.
    anneal_steps: its length, > 0.
    anneal: ``"cos"`` or ``"linear"``.

  Returns:
    A schedule ``step -> value``.

  Example:
    >>> import lrjax
    >>> s = lrjax.swa_schedule(lrjax.cosine_decay(1.0, 100), 0.05, 50, 10, anneal="linear")
    >>> [round(float(s(t)), 3) for t in (0, 50, 55, 60, 200)]
    [1.0, 0.5, 0.275, 0.05, 0.05]

  References:
    Izmailov et al., `Averaging Weights Leads to Wider Optima and Better
    Generalization <https://arxiv.org/abs/1803.05407>`_, UAI 2018;
    `torch.optim.swa_utils.SWALR <https://pytorch.org/docs/stable/generated/torch.optim.swa_utils.SWALR.html>`_.
  """
  fn = "swa_schedule"
  base = as_schedule(base, fn, "base")
  v.non_negative(fn, "start_step", start_step)
  v.positive(fn, "anneal_steps", anneal_steps)
  v.one_of(fn, "anneal", anneal, ("cos", "linear"))
  return SWASchedule(base, swa_value, start_step, anneal_steps, anneal)
