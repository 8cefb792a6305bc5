"""Monotone decays: constant, linear, polynomial, exponential, step, inverse."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp

from lrjax import _validation as v
from lrjax._numerics import as_float
from lrjax.schedules._base import (Schedule, fraction, lerp, public, schedule_class, static,
                                   warmup_steps_for)

ArrayLike = jax.typing.ArrayLike


@schedule_class("constant")
class Constant(Schedule):
  value: Any

  def _value(self, t):
    return jnp.broadcast_to(as_float(self.value), t.shape)


@public(preset=lambda steps, peak: dict(value=peak))
def constant(value: ArrayLike) -> Schedule:
  r"""A schedule that holds one value: :math:`\eta_t = v`.

  Args:
    value: the learning rate at every step.

  Returns:
    A schedule ``step -> value``.

  Example:
    >>> import lrjax
    >>> print(round(float(lrjax.constant(3e-4)(1000)), 8))
    0.0003
  """
  return Constant(value)


def _poly_fraction(t, begin, steps, cycle):
  """The fraction of the transition done at ``t``, Keras ``cycle`` included."""
  local = jnp.maximum(t - begin, 0)
  if cycle:
    mult = jnp.where(local == 0, 1.0, jnp.ceil(local / steps))
    return fraction(local, steps * mult)
  return fraction(local, steps)


@schedule_class("polynomial")
class Polynomial(Schedule):
  init_value: Any
  end_value: Any
  power: Any
  transition_steps: Any
  transition_begin: Any = 0
  cycle: bool = static(default=False)

  def _value(self, t):
    frac = _poly_fraction(t, self.transition_begin, self.transition_steps, self.cycle)
    init, end = as_float(self.init_value), as_float(self.end_value)
    return lerp(end, init, (1 - frac) ** as_float(self.power))


@schedule_class("linear")
class Linear(Schedule):
  init_value: Any
  end_value: Any
  transition_steps: Any
  transition_begin: Any = 0

  def _value(self, t):
    frac = _poly_fraction(t, self.transition_begin, self.transition_steps, False)
    init, end = as_float(self.init_value), as_float(self.end_value)
    return lerp(init, end, frac)


def _check_transition(fn, transition_steps, transition_begin):
  v.positive(fn, "transition_steps", transition_steps)
  v.non_negative(fn, "transition_begin", transition_begin)


@public(preset=lambda steps, peak: dict(init_value=peak, end_value=0.0, transition_steps=steps))
def linear(init_value: ArrayLike, end_value: ArrayLike, transition_steps: ArrayLike,
           transition_begin: ArrayLike = 0) -> Schedule:
  r"""Linear transition from ``init_value`` to ``end_value``.

  .. math::
    \eta_t = I + (E - I)\,\frac{\min(\max(t - B, 0), T)}{T}

  Values equal ``optax.linear_schedule`` and PyTorch ``LinearLR`` (with
  ``I = base * start_factor``, ``E = base * end_factor``, ``T = total_iters``).
  Unlike Optax, a non-positive ``transition_steps`` is an error, not a constant.

  Args:
    init_value: value before and at ``transition_begin``.
    end_value: value from ``transition_begin + transition_steps`` on.
    transition_steps: length ``T`` of the transition, > 0.
    transition_begin: steps ``B`` held at ``init_value`` first, >= 0.

  Returns:
    A schedule ``step -> value``.

  Example:
    >>> import lrjax
    >>> s = lrjax.linear(1.0, 0.0, 10)
    >>> [round(float(s(t)), 2) for t in (0, 5, 10, 20)]
    [1.0, 0.5, 0.0, 0.0]

  References:
    `optax.linear_schedule <https://optax.readthedocs.io/en/latest/api/optimizer_schedules.html>`_;
    `torch.optim.lr_scheduler.LinearLR <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.LinearLR.html>`_.
  """
  _check_transition("linear", transition_steps, transition_begin)
  return Linear(init_value, end_value, transition_steps, transition_begin)


@public(preset=lambda steps, peak: dict(init_value=peak, end_value=0.0, power=2.0,
                                       transition_steps=steps))
def polynomial(init_value: ArrayLike, end_value: ArrayLike, power: ArrayLike,
               transition_steps: ArrayLike, transition_begin: ArrayLike = 0,
               cycle: bool = False) -> Schedule:
  r"""Polynomial transition from ``init_value`` to ``end_value``.

  .. math::
    \eta_t = (I - E)\,(1 - p)^{P} + E, \qquad
    p = \frac{\min(\max(t - B, 0), T)}{T}

  With ``cycle=True`` (Keras ``PolynomialDecay(cycle=True)``) the length grows
  to the next multiple of ``T`` instead of holding:
  :math:`p = \tau / (T \lceil \tau / T \rceil)` with :math:`\tau = \max(t-B, 0)`
  (the multiplier is 1 at :math:`\tau = 0`). Without cycle the values equal
  ``optax.polynomial_schedule`` and PyTorch ``PolynomialLR`` (``E = 0``).

  Args:
    init_value: value ``I`` at the start.
    end_value: value ``E`` at the end.
    power: exponent ``P`` > 0.
    transition_steps: length ``T`` > 0.
    transition_begin: steps ``B`` >= 0 held at ``init_value`` first.
    cycle: restart the decay (Keras semantics) rather than hold ``end_value``.

  Returns:
    A schedule ``step -> value``.

  Example:
    >>> import lrjax
    >>> s = lrjax.polynomial(1.0, 0.0, 2.0, 10)
    >>> [round(float(s(t)), 2) for t in (0, 5, 10)]
    [1.0, 0.25, 0.0]

  References:
    `keras.optimizers.schedules.PolynomialDecay <https://keras.io/api/optimizers/learning_rate_schedules/polynomial_decay/>`_;
    `optax.polynomial_schedule <https://optax.readthedocs.io/en/latest/api/optimizer_schedules.html>`_.
  """
  _check_transition("polynomial", transition_steps, transition_begin)
  v.positive("polynomial", "power", power)
  return Polynomial(init_value, end_value, power, transition_steps, transition_begin,
                    bool(cycle))


@schedule_class("exponential_decay")
class ExponentialDecay(Schedule):
  init_value: Any
  transition_steps: Any
  decay_rate: Any
  transition_begin: Any = 0
  staircase: bool = static(default=False)
  end_value: Any = None

  def _value(self, t):
    p = jnp.maximum(t - self.transition_begin, 0) / self.transition_steps
    if self.staircase:
      p = jnp.floor(p)
    rate = as_float(self.decay_rate)
    value = as_float(self.init_value) * rate ** p
    if self.end_value is not None:
      end = as_float(self.end_value)
      value = jnp.where(rate < 1, jnp.maximum(value, end), jnp.minimum(value, end))
    return value


@public(preset=lambda steps, peak: dict(init_value=peak, transition_steps=steps,
                                       decay_rate=0.01))
def exponential_decay(init_value: ArrayLike, transition_steps: ArrayLike,
                      decay_rate: ArrayLike, transition_begin: ArrayLike = 0,
                      staircase: bool = False,
                      end_value: Optional[ArrayLike] = None) -> Schedule:
  r"""Exponential decay, argument for argument as ``optax.exponential_decay``.

  .. math::
    \eta_t = I \cdot r^{p}, \qquad p = \frac{\max(t - B, 0)}{T}
    \quad(\lfloor p \rfloor \text{ when staircase})

  ``end_value`` is a floor when ``r < 1`` and a ceiling when ``r > 1``. PyTorch
  ``ExponentialLR(gamma)`` is ``exponential_decay(base, 1, gamma)``. Unlike
  Optax, ``transition_steps <= 0`` and ``decay_rate <= 0`` are errors rather
  than a silent constant.

  Args:
    init_value: value ``I`` at the start.
    transition_steps: steps ``T`` > 0 per factor of ``decay_rate``.
    decay_rate: the factor ``r`` > 0.
    transition_begin: steps ``B`` >= 0 held at ``init_value`` first.
    staircase: decay in discrete jumps every ``transition_steps``.
    end_value: optional bound (floor when decaying, ceiling when growing).

  Returns:
    A schedule ``step -> value``.

  Example:
    >>> import lrjax
    >>> s = lrjax.exponential_decay(1.0, 1000, 0.5)
    >>> [round(float(s(t)), 3) for t in (0, 500, 1000, 2000)]
    [1.0, 0.707, 0.5, 0.25]

  References:
    `optax.exponential_decay <https://optax.readthedocs.io/en/latest/api/optimizer_schedules.html>`_;
    `torch.optim.lr_scheduler.ExponentialLR <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.ExponentialLR.html>`_.
  """
  _check_transition("exponential_decay", transition_steps, transition_begin)
  v.positive("exponential_decay", "decay_rate", decay_rate)
  return ExponentialDecay(init_value, transition_steps, decay_rate, transition_begin,
                          bool(staircase), end_value)


@schedule_class("step_decay")
class StepDecay(Schedule):
  init_value: Any
  step_size: Any
  gamma: Any = 0.1

  def _value(self, t):
    return as_float(self.init_value) * as_float(self.gamma) ** jnp.floor(t / self.step_size)


@public(preset=lambda steps, peak: dict(init_value=peak, step_size=max(steps // 3, 1)))
def step_decay(init_value: ArrayLike, step_size: ArrayLike,
               gamma: ArrayLike = 0.1) -> Schedule:
  r"""Multiply by ``gamma`` every ``step_size`` steps (PyTorch ``StepLR``).

  .. math::
    \eta_t = I \cdot \gamma^{\lfloor t / s \rfloor}

  Args:
    init_value: value ``I`` at step 0.
    step_size: period ``s`` > 0.
    gamma: factor >= 0 applied at each multiple of ``step_size``.

  Returns:
    A schedule ``step -> value``.

  Example:
    >>> import lrjax
    >>> s = lrjax.step_decay(1.0, 30)
    >>> [round(float(s(t)), 3) for t in (0, 29, 30, 60)]
    [1.0, 1.0, 0.1, 0.01]

  References:
    `torch.optim.lr_scheduler.StepLR <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.StepLR.html>`_.
  """
  v.positive("step_decay", "step_size", step_size)
  v.non_negative("step_decay", "gamma", gamma)
  return StepDecay(init_value, step_size, gamma)


@schedule_class("multistep_decay")
class MultistepDecay(Schedule):
  init_value: Any
  milestones: Any
  gamma: Any = 0.1

  def config_args(self):
    return {"init_value": self.init_value,
            "milestones": [int(m) if float(m).is_integer() else float(m)
                           for m in jnp.asarray(self.milestones).tolist()],
            "gamma": self.gamma}

  def _value(self, t):
    milestones = jnp.asarray(self.milestones)
    if milestones.size == 0:
      count = jnp.zeros_like(t)
    else:
      count = jnp.searchsorted(milestones, t, side="right")
    return as_float(self.init_value) * as_float(self.gamma) ** as_float(count)


@public(preset=lambda steps, peak: dict(init_value=peak,
                                       milestones=[steps // 2, 3 * steps // 4]))
def multistep_decay(init_value: ArrayLike, milestones: Sequence[ArrayLike],
                    gamma: ArrayLike = 0.1) -> Schedule:
  r"""Multiply by ``gamma`` at each milestone (PyTorch ``MultiStepLR``).

  .. math::
    \eta_t = I \cdot \gamma^{\#\{m \in M : m \le t\}}

  A milestone listed twice counts twice. The count is a binary search
  (``searchsorted``): compile time does not grow with the number of milestones.

  Args:
    init_value: value ``I`` at step 0.
    milestones: non-decreasing steps >= 0 at which ``gamma`` is applied.
    gamma: factor >= 0.

  Returns:
    A schedule ``step -> value``.

  Example:
    >>> import lrjax
    >>> s = lrjax.multistep_decay(1.0, [30, 80])
    >>> [round(float(s(t)), 3) for t in (0, 30, 79, 80)]
    [1.0, 0.1, 0.1, 0.01]

  References:
    `torch.optim.lr_scheduler.MultiStepLR <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.MultiStepLR.html>`_.
  """
  steps = _as_1d("multistep_decay", "milestones", milestones)
  v.non_negative("multistep_decay", "milestones", steps)
  v.increasing("multistep_decay", "milestones", steps, strict=False)
  v.non_negative("multistep_decay", "gamma", gamma)
  return MultistepDecay(init_value, steps, gamma)


def _as_1d(fn: str, name: str, values: Any) -> jax.Array:
  """A 1-D array from a sequence, refusing anything else."""
  try:
    arr = jnp.asarray(values)
  except (TypeError, ValueError):
    raise ValueError(f"lrjax.{fn}: {name} must be a 1-D sequence of numbers, "
                     f"got {name}={values!r}") from None
  if arr.ndim != 1:
    raise ValueError(f"lrjax.{fn}: {name} must be a 1-D sequence of numbers, "
                     f"got {name}={values!r}")
  return arr


@schedule_class("inverse_time_decay")
class InverseTimeDecay(Schedule):
  init_value: Any
  decay_steps: Any
  decay_rate: Any
  staircase: bool = static(default=False)

  def _value(self, t):
    p = t / self.decay_steps
    if self.staircase:
      p = jnp.floor(p)
    return as_float(self.init_value) / (1 + as_float(self.decay_rate) * p)


@public(preset=lambda steps, peak: dict(init_value=peak, decay_steps=warmup_steps_for(steps),
                                       decay_rate=1.0))
def inverse_time_decay(init_value: ArrayLike, decay_steps: ArrayLike,
                       decay_rate: ArrayLike, staircase: bool = False) -> Schedule:
  r"""Inverse-time decay (Keras ``InverseTimeDecay``).

  .. math::
    \eta_t = \frac{I}{1 + r\,p}, \qquad p = t / T \quad(\lfloor t/T \rfloor
    \text{ when staircase})

  Args:
    init_value: value ``I`` at step 0.
    decay_steps: ``T`` > 0.
    decay_rate: ``r`` >= 0.
    staircase: decay in discrete jumps.

  Returns:
    A schedule ``step -> value``.

  Example:
    >>> import lrjax
    >>> s = lrjax.inverse_time_decay(1.0, 10, 0.5)
    >>> [round(float(s(t)), 3) for t in (0, 10, 20)]
    [1.0, 0.667, 0.5]

  References:
    `keras.optimizers.schedules.InverseTimeDecay <https://keras.io/api/optimizers/learning_rate_schedules/inverse_time_decay/>`_.
  """
  v.positive("inverse_time_decay", "decay_steps", decay_steps)
  v.non_negative("inverse_time_decay", "decay_rate", decay_rate)
  return InverseTimeDecay(init_value, decay_steps, decay_rate, bool(staircase))


@schedule_class("inverse_sqrt")
class InverseSqrt(Schedule):
  peak_value: Any
  warmup_steps: Any
  timescale: Any = None

  def _value(self, t):
    peak = as_float(self.peak_value)
    w = as_float(self.warmup_steps)
    tau = w if self.timescale is None else as_float(self.timescale)
    ramp = peak * t / jnp.where(w > 0, w, 1)
    decay = peak * jnp.sqrt(tau / (jnp.maximum(t - w, 0) + tau))
    return jnp.where(t < w, ramp, decay)


@public(preset=lambda steps, peak: dict(peak_value=peak, warmup_steps=warmup_steps_for(steps)))
def inverse_sqrt(peak_value: ArrayLike, warmup_steps: ArrayLike,
                 timescale: Optional[ArrayLike] = None) -> Schedule:
  r"""Linear warmup from 0, then inverse square-root decay.

  .. math::
    \eta_t = \begin{cases} P\,t / W & t < W \\
    P \sqrt{\tau / (t - W + \tau)} & t \ge W \end{cases}

  with :math:`\tau` = ``timescale`` or ``warmup_steps`` (the Transformer "Noam"
  shape when :math:`\tau = W`; Hugging Face ``get_inverse_sqrt_schedule``).

  Args:
    peak_value: value ``P`` at the end of warmup.
    warmup_steps: ``W`` >= 0.
    timescale: ``tau`` > 0; defaults to ``warmup_steps`` (then ``W`` must be > 0).

  Returns:
    A schedule ``step -> value``.

  Example:
    >>> import lrjax
    >>> s = lrjax.inverse_sqrt(1.0, 100)
    >>> [round(float(s(t)), 3) for t in (0, 50, 100, 900)]
    [0.0, 0.5, 1.0, 0.333]

  References:
    Vaswani et al., `Attention Is All You Need <https://arxiv.org/abs/1706.03762>`_, 2017;
    `transformers.get_inverse_sqrt_schedule <https://huggingface.co/docs/transformers/main_classes/optimizer_schedules>`_.
  """
  v.non_negative("inverse_sqrt", "warmup_steps", warmup_steps)
  if timescale is None:
    v.check("inverse_sqrt", "warmup_steps", warmup_steps, lambda a: a > 0,
            "> 0 when timescale is None")
  else:
    v.positive("inverse_sqrt", "timescale", timescale)
  return InverseSqrt(peak_value, warmup_steps, timescale)
