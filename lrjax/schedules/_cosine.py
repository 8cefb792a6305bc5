"""Cosine shapes and cycles: cosine decay, warmup-cosine, SGDR, cyclic, one-cycle."""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp

from lrjax import _validation as v
from lrjax._numerics import as_float
from lrjax.schedules._base import (Schedule, fraction, lerp, public, schedule_class, static,
                                   warmup_steps_for)

ArrayLike = jax.typing.ArrayLike


def half_cosine(frac: jax.Array) -> jax.Array:
  """``(1 + cos(pi * frac)) / 2``: 1 at frac 0, 0 at frac 1."""
  return 0.5 * (1 + jnp.cos(jnp.pi * frac))


def cosine_between(start, end, frac, exponent=1.0):
  """Cosine interpolation from ``start`` (frac 0) to ``end`` (frac 1), exact at both."""
  return lerp(end, start, half_cosine(frac) ** exponent)


@schedule_class("cosine_decay")
class CosineDecay(Schedule):
  init_value: Any
  decay_steps: Any
  end_value: Any = 0.0
  exponent: Any = 1.0

  def _value(self, t):
    frac = fraction(t, self.decay_steps)
    return cosine_between(as_float(self.init_value), as_float(self.end_value), frac,
                          as_float(self.exponent))


@public(preset=lambda steps, peak: dict(init_value=peak, decay_steps=steps))
def cosine_decay(init_value: ArrayLike, decay_steps: ArrayLike,
                 end_value: ArrayLike = 0.0, exponent: ArrayLike = 1.0) -> Schedule:
  r"""Cosine decay from ``init_value`` to ``end_value``, then hold.

  .. math::
    \eta_t = E + (I - E)\left[\tfrac12\left(1 + \cos\frac{\pi \min(t, T)}{T}
    \right)\right]^{p}

  Equal to ``optax.cosine_decay_schedule(I, T, alpha=E/I, exponent=p)`` and to
  PyTorch ``CosineAnnealingLR(T_max=T, eta_min=E)`` on ``[0, T]``. Intended
  difference from PyTorch: after ``T`` this holds ``E``, where PyTorch's closed
  form rises again.

  Args:
    init_value: value ``I`` at step 0.
    decay_steps: ``T`` > 0.
    end_value: value ``E`` from step ``T`` on.
    exponent: ``p`` > 0 applied to the cosine factor (Optax's ``exponent``).

  Returns:
    A schedule ``step -> value``.

  Example:
    >>> import lrjax
    >>> s = lrjax.cosine_decay(1.0, 100, end_value=0.1)
    >>> [round(float(s(t)), 3) for t in (0, 50, 100, 200)]
    [1.0, 0.55, 0.1, 0.1]

  References:
    Loshchilov & Hutter, `SGDR: Stochastic Gradient Descent with Warm Restarts
    <https://arxiv.org/abs/1608.03983>`_, 2017;
    `torch.optim.lr_scheduler.CosineAnnealingLR <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.CosineAnnealingLR.html>`_.
  """
  v.positive("cosine_decay", "decay_steps", decay_steps)
  v.positive("cosine_decay", "exponent", exponent)
  return CosineDecay(init_value, decay_steps, end_value, exponent)


@schedule_class("warmup_cosine_decay")
class WarmupCosineDecay(Schedule):
  init_value: Any
  peak_value: Any
  warmup_steps: Any
  decay_steps: Any
  end_value: Any = 0.0
  exponent: Any = 1.0

  def _value(self, t):
    init, peak = as_float(self.init_value), as_float(self.peak_value)
    w = as_float(self.warmup_steps)
    ramp = lerp(init, peak, t / jnp.where(w > 0, w, 1))
    length = self.decay_steps - w
    frac = fraction(t - w, length)
    decay = cosine_between(peak, as_float(self.end_value), frac, as_float(self.exponent))
    return jnp.where(t < w, ramp, decay)


@public(preset=lambda steps, peak: dict(init_value=0.0, peak_value=peak,
                                       warmup_steps=warmup_steps_for(steps), decay_steps=steps))
def warmup_cosine_decay(init_value: ArrayLike, peak_value: ArrayLike,
                        warmup_steps: ArrayLike, decay_steps: ArrayLike,
                        end_value: ArrayLike = 0.0,
                        exponent: ArrayLike = 1.0) -> Schedule:
  r"""Linear warmup to ``peak_value``, then cosine decay to ``end_value``.

  .. math::
    \eta_t = \begin{cases} I + (P - I)\,t/W & t < W \\
    E + (P - E)\left[\tfrac12(1 + \cos\frac{\pi\min(t - W, D - W)}{D - W})
    \right]^{p} & t \ge W \end{cases}

  Values as ``optax.warmup_cosine_decay_schedule``: ``decay_steps`` ``D``
  counts the warmup, so the cosine lasts ``D - W`` steps.

  Args:
    init_value: value ``I`` at step 0.
    peak_value: value ``P`` at step ``W``.
    warmup_steps: ``W`` >= 0.
    decay_steps: total length ``D`` > ``W``.
    end_value: value ``E`` from step ``D`` on.
    exponent: ``p`` > 0.

  Returns:
    A schedule ``step -> value``.

  Example:
    >>> import lrjax
    >>> s = lrjax.warmup_cosine_decay(0.0, 1.0, 10, 110)
    >>> [round(float(s(t)), 3) for t in (0, 5, 10, 60, 110)]
    [0.0, 0.5, 1.0, 0.5, 0.0]

  References:
    Goyal et al., `Accurate, Large Minibatch SGD <https://arxiv.org/abs/1706.02677>`_, 2017;
    `optax.warmup_cosine_decay_schedule <https://optax.readthedocs.io/en/latest/api/optimizer_schedules.html>`_.
  """
  fn = "warmup_cosine_decay"
  v.non_negative(fn, "warmup_steps", warmup_steps)
  v.positive(fn, "decay_steps", decay_steps)
  w, d = v.concrete(warmup_steps), v.concrete(decay_steps)
  if w is not None and d is not None and not d > w:
    v.fail(fn, "decay_steps", f"> warmup_steps={w.item()!r}", decay_steps)
  v.positive(fn, "exponent", exponent)
  return WarmupCosineDecay(init_value, peak_value, warmup_steps, decay_steps, end_value,
                           exponent)


@schedule_class("cosine_restarts")
class CosineRestarts(Schedule):
  init_value: Any
  first_period: Any
  period_mult: Any = 1.0
  peak_decay: Any = 1.0
  end_value: Any = 0.0

  def _value(self, t):
    t0 = as_float(self.first_period)
    m = as_float(self.period_mult)
    log_m = jnp.log(m)
    near_one = jnp.abs(log_m) < 1e-6
    safe_m = jnp.where(near_one, 2.0, m)
    safe_log = jnp.log(safe_m)

    def start(i):
      # Period i starts at t0 * (m**i - 1) / (m - 1); its m -> 1 limit is t0 * i,
      # and the series keeps the derivative in m right at m = 1.
      series = i * (1 + (i - 1) * log_m / 2)
      return t0 * jnp.where(near_one, series, (safe_m ** i - 1) / (safe_m - 1))

    guess = jnp.where(near_one, jnp.floor(t / t0),
                      jnp.floor(jnp.log1p(t / t0 * (safe_m - 1)) / safe_log))
    guess = jnp.maximum(jax.lax.stop_gradient(guess), 0)
    # Rounding in the logarithm can be off by one at a boundary: correct it.
    i = jnp.where(t < start(guess), guess - 1, guess)
    i = jax.lax.stop_gradient(jnp.where(t >= start(i + 1), i + 1, i))
    frac = (t - start(i)) / (t0 * m ** i)
    init, end = as_float(self.init_value), as_float(self.end_value)
    return lerp(end, init, as_float(self.peak_decay) ** i * half_cosine(frac))


@public(preset=lambda steps, peak: dict(init_value=peak, first_period=max(steps // 7, 1),
                                       period_mult=2.0))
def cosine_restarts(init_value: ArrayLike, first_period: ArrayLike,
                    period_mult: ArrayLike = 1.0, peak_decay: ArrayLike = 1.0,
                    end_value: ArrayLike = 0.0) -> Schedule:
  r"""Cosine annealing with warm restarts (SGDR).

  Period :math:`i` lasts :math:`T_i = T_0 m^i` steps; at offset
  :math:`\tau` inside it

  .. math::
    \eta_t = E + (I - E)\, d^{\,i}\, \tfrac12\left(1 + \cos\frac{\pi\tau}{T_i}\right)

  Equal to PyTorch ``CosineAnnealingWarmRestarts(T_0, T_mult, eta_min=E)``
  (``d = 1``) and to Keras ``CosineDecayRestarts(I, first_decay_steps=T_0,
  t_mul=m, m_mul=d, alpha=E/I)``.

  Args:
    init_value: peak ``I`` of the first period.
    first_period: ``T_0`` > 0.
    period_mult: ``m`` >= 1, growth of each period's length.
    peak_decay: ``d`` > 0, factor on the amplitude above ``end_value`` per restart.
    end_value: the floor ``E`` each period decays to.

  Returns:
    A schedule ``step -> value`` (periodic; it never holds).

  Example:
    >>> import lrjax
    >>> s = lrjax.cosine_restarts(1.0, 10, period_mult=2.0)
    >>> [round(float(s(t)), 3) for t in (0, 5, 10, 20, 30)]
    [1.0, 0.5, 1.0, 0.5, 1.0]

  References:
    Loshchilov & Hutter, `SGDR: Stochastic Gradient Descent with Warm Restarts
    <https://arxiv.org/abs/1608.03983>`_, 2017;
    `torch.optim.lr_scheduler.CosineAnnealingWarmRestarts <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.CosineAnnealingWarmRestarts.html>`_;
    `keras.optimizers.schedules.CosineDecayRestarts <https://keras.io/api/optimizers/learning_rate_schedules/cosine_decay_restarts/>`_.
  """
  fn = "cosine_restarts"
  v.positive(fn, "first_period", first_period)
  v.check(fn, "period_mult", period_mult, lambda a: a >= 1, ">= 1")
  v.positive(fn, "peak_decay", peak_decay)
  return CosineRestarts(init_value, first_period, period_mult, peak_decay, end_value)


_CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


@schedule_class("cyclic")
class Cyclic(Schedule):
  base_value: Any
  max_value: Any
  step_size_up: Any
  step_size_down: Any = None
  mode: str = static(default="triangular")
  gamma: Any = 1.0

  def _value(self, t):
    up = as_float(self.step_size_up)
    down = up if self.step_size_down is None else as_float(self.step_size_down)
    total = up + down
    ratio = up / total
    cycle = jnp.floor(1 + t / total)
    x = 1 + t / total - cycle
    s = jnp.where(x <= ratio, x / ratio, (x - 1) / (ratio - 1))
    if self.mode == "triangular":
      factor = 1.0
    elif self.mode == "triangular2":
      factor = 1 / 2.0 ** (cycle - 1)
    else:
      factor = as_float(self.gamma) ** t
    base = as_float(self.base_value)
    return lerp(base, as_float(self.max_value), s * factor)


@public(preset=lambda steps, peak: dict(base_value=peak / 10, max_value=peak,
                                       step_size_up=max(steps // 8, 1)))
def cyclic(base_value: ArrayLike, max_value: ArrayLike, step_size_up: ArrayLike,
           step_size_down: Optional[ArrayLike] = None, mode: str = "triangular",
           gamma: ArrayLike = 1.0) -> Schedule:
  r"""Cyclical learning rate between two bounds (PyTorch ``CyclicLR``).

  With :math:`L = u + d`, :math:`\rho = u / L`:

  .. math::
    c = \lfloor 1 + t/L \rfloor,\quad x = 1 + t/L - c,\quad
    s = \begin{cases} x/\rho & x \le \rho \\ (x-1)/(\rho-1) & x > \rho\end{cases}

  .. math::
    \eta_t = b + (M - b)\, s\, \sigma, \qquad \sigma = 1,\ 2^{-(c-1)},\ \gamma^t

  for ``mode`` ``"triangular"``, ``"triangular2"`` and ``"exp_range"``.

  Args:
    base_value: lower bound ``b``.
    max_value: upper bound ``M``.
    step_size_up: steps ``u`` > 0 rising.
    step_size_down: steps ``d`` > 0 falling; defaults to ``step_size_up``.
    mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``.
    gamma: ``exp_range``'s per-step factor, > 0.

  Returns:
    A periodic schedule ``step -> value``.

  Example:
    >>> import lrjax
    >>> s = lrjax.cyclic(0.1, 1.0, 10)
    >>> [round(float(s(t)), 2) for t in (0, 5, 10, 15, 20)]
    [0.1, 0.55, 1.0, 0.55, 0.1]

  References:
    Smith, `Cyclical Learning Rates for Training Neural Networks
    <https://arxiv.org/abs/1506.01186>`_, 2017;
    `torch.optim.lr_scheduler.CyclicLR <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.CyclicLR.html>`_.
  """
  v.positive("cyclic", "step_size_up", step_size_up)
  if step_size_down is not None:
    v.positive("cyclic", "step_size_down", step_size_down)
  v.one_of("cyclic", "mode", mode, _CYCLIC_MODES)
  v.positive("cyclic", "gamma", gamma)
  return Cyclic(base_value, max_value, step_size_up, step_size_down, mode, gamma)


@schedule_class("one_cycle")
class OneCycle(Schedule):
  peak_value: Any
  total_steps: Any
  pct_start: Any = 0.3
  anneal: str = static(default="cos")
  div_factor: Any = 25.0
  final_div_factor: Any = 1e4
  three_phase: bool = static(default=False)

  def _value(self, t):
    peak = as_float(self.peak_value)
    initial = peak / as_float(self.div_factor)
    low = initial / as_float(self.final_div_factor)
    total = as_float(self.total_steps)
    up_end = as_float(self.pct_start) * total - 1
    if self.three_phase:
      ends = [up_end, 2 * as_float(self.pct_start) * total - 2, total - 1]
      levels = [initial, peak, initial, low]
    else:
      ends = [up_end, total - 1]
      levels = [initial, peak, low]
    t = jnp.minimum(t, total - 1)
    value = jnp.zeros_like(t)
    start = jnp.zeros_like(total)
    for k, end in enumerate(ends):
      frac = fraction(t - start, end - start)
      if self.anneal == "cos":
        piece = cosine_between(levels[k], levels[k + 1], frac)
      else:
        piece = lerp(levels[k], levels[k + 1], frac)
      active = t > start if k else t >= start
      value = jnp.where(active, piece, value)
      start = end
    return value


@public(preset=lambda steps, peak: dict(peak_value=peak, total_steps=max(steps, 4)))
def one_cycle(peak_value: ArrayLike, total_steps: ArrayLike,
              pct_start: ArrayLike = 0.3, anneal: str = "cos",
              div_factor: ArrayLike = 25.0, final_div_factor: ArrayLike = 1e4,
              three_phase: bool = False) -> Schedule:
  r"""The 1cycle policy, values and phase boundaries as PyTorch ``OneCycleLR``.

  ``initial = peak / div_factor``, ``min = initial / final_div_factor``. Phase
  ends (inclusive step index) are ``[p N - 1, N - 1]`` going
  initial→peak→min, or with ``three_phase`` ``[p N - 1, 2 p N - 2, N - 1]``
  going initial→peak→initial→min. Inside a phase from ``s0`` (the previous
  end, 0 for the first) to ``s1``, :math:`q = (t - s_0)/(s_1 - s_0)` and

  .. math::
    \text{cos: } e + \tfrac{a - e}{2}(1 + \cos \pi q), \qquad
    \text{linear: } a + (e - a) q

  for a phase from ``a`` to ``e``. Intended difference: from step ``N - 1`` on
  the value holds ``min`` (PyTorch raises past ``N``).

  Args:
    peak_value: the peak ``max_lr``.
    total_steps: ``N`` > 0.
    pct_start: fraction ``p`` in (0, 1) of steps rising; each phase must last > 0 steps.
    anneal: ``"cos"`` or ``"linear"``.
    div_factor: > 0.
    final_div_factor: > 0.
    three_phase: fall back to ``initial`` before annealing to ``min``.

  Returns:
    A schedule ``step -> value``.

  Example:
    >>> import lrjax
    >>> s = lrjax.one_cycle(1.0, 100, pct_start=0.5, anneal="linear",
    ...                     div_factor=10.0, final_div_factor=1.0)
    >>> [round(float(s(t)), 3) for t in (0, 49, 74, 99)]
    [0.1, 1.0, 0.55, 0.1]

  References:
    Smith & Topin, `Super-Convergence <https://arxiv.org/abs/1708.07120>`_, 2018;
    `torch.optim.lr_scheduler.OneCycleLR <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.OneCycleLR.html>`_.
  """
  fn = "one_cycle"
  v.positive(fn, "total_steps", total_steps)
  v.in_range(fn, "pct_start", pct_start, 0.0, 1.0)
  v.one_of(fn, "anneal", anneal, ("cos", "linear"))
  v.positive(fn, "div_factor", div_factor)
  v.positive(fn, "final_div_factor", final_div_factor)
  total, pct = v.concrete(total_steps), v.concrete(pct_start)
  if total is not None and pct is not None:
    n, p = float(total), float(pct)
    ends = [p * n - 1, 2 * p * n - 2, n - 1] if three_phase else [p * n - 1, n - 1]
    starts = [0.0] + ends[:-1]
    if any(e - s <= 0 for s, e in zip(starts, ends)):
      v.fail(fn, "pct_start", f"such that every phase lasts > 0 steps (phase ends "
             f"{ends} for total_steps={n:g})", pct_start)
  return OneCycle(peak_value, total_steps, pct_start, anneal, div_factor,
                  final_div_factor, bool(three_phase))
