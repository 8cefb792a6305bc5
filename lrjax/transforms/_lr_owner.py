"""The one skeleton of every transform that owns its learning rate.

``hypergradient``, ``window_search`` and ``learned_controller`` each
run an inner Optax optimizer built at learning rate 1, so its update is a
direction; the transform chooses the rate and scales the direction by it. Their
states begin alike (``count``, ``lr``, ``num_nonfinite``, ``inner_state``) and
they count and skip non-finite steps alike. That is written once, here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import optax

from lrjax import _guard
from lrjax import _validation as v
from lrjax._numerics import as_float, counter, increment_if, read_value, scale_tree


class GuardSettings(NamedTuple):
  """The spike guard's settings of a transform that owns its rate (``lrjax._guard``): the
  defaults are the public constructors' (``guard=True, guard_factor=4.0, guard_cut=0.1,
  guard_nonfinite=3, guard_skip=True``). Built checked by ``LROwner.guard_settings``."""

  guard: bool = _guard.GUARD_DEFAULTS["guard"]  # type: ignore[assignment]
  factor: Any = _guard.GUARD_DEFAULTS["guard_factor"]
  cut: Any = _guard.GUARD_DEFAULTS["guard_cut"]
  nonfinite: int = _guard.GUARD_DEFAULTS["guard_nonfinite"]  # type: ignore[assignment]
  skip: bool = True


@dataclasses.dataclass(frozen=True)
class LROwner:
  """An inner optimizer at learning rate 1, and the state fields every owner shares.

  Attributes:
    fn: the public function's name, for error messages.
    inner: ``optimizer_factory(1.0)`` with extra-args support.
  """

  fn: str
  inner: optax.GradientTransformationExtraArgs

  @classmethod
  def build(cls, fn: str, optimizer_factory: Callable[..., Any]) -> "LROwner":
    """Checks ``optimizer_factory`` and builds the inner optimizer at learning rate 1."""
    v.is_callable(fn, "optimizer_factory", optimizer_factory)
    return cls(fn, optax.with_extra_args_support(optimizer_factory(1.0)))

  def init_fields(self, params: Any, lr: Any) -> dict[str, Any]:
    """``count``, ``lr``, ``num_nonfinite`` and ``inner_state`` of a new state."""
    return dict(count=counter(), lr=as_float(lr), num_nonfinite=counter(),
                inner_state=self.inner.init(params))

  def guard_settings(self, guard: Any, guard_factor: Any, guard_cut: Any,
                     guard_nonfinite: Any, guard_skip: Any) -> GuardSettings:
    """The spike guard's arguments of an owner, checked (``guard_args`` + ``guard_skip``)."""
    checked = _guard.guard_args(self.fn, guard, guard_factor, guard_cut, guard_nonfinite)
    return GuardSettings(guard=checked["guard"], factor=checked["guard_factor"],
                         cut=checked["guard_cut"], nonfinite=checked["guard_nonfinite"],
                         skip=_guard.flag(self.fn, "guard_skip", guard_skip))

  def require_params(self, params: Any, why: str) -> None:
    if params is None:
      raise ValueError(f"lrjax.{self.fn}: update needs params ({why})")

  def direction(self, grads: Any, inner_state: Any, params: Any,
                **extra_args: Any) -> tuple[Any, Any]:
    """The inner optimizer's update at learning rate 1, and its next state."""
    return self.inner.update(grads, inner_state, params, **extra_args)

  @staticmethod
  def step(direction: Any, lr: jax.Array) -> Any:
    """The update ``lr * direction``, each leaf keeping its dtype."""
    return scale_tree(direction, lr)

  def spike(self, guard_state: _guard.GuardState, value: Any, grads_finite: jax.Array,
            settings: GuardSettings, axis_name: Any) -> tuple[_guard.GuardState, jax.Array]:
    """The spike guard on this update's loss ``value`` (or, without one, on the gradients).

    Returns the guard's next state and whether it triggered; with
    ``settings.guard`` False nothing moves and it never triggers.
    """
    if not settings.guard:
      return guard_state, jax.numpy.bool_(False)
    if value is None:  # no loss: only runs of non-finite gradients count
      return _guard.guard_step(guard_state, as_float(0.0), grads_finite,
                               factor=settings.factor, nonfinite=settings.nonfinite,
                               smoothing=0.0, spikes=False)
    loss, finite = read_value(value, axis_name, f"lrjax.{self.fn}")
    return _guard.guard_step(guard_state, loss, finite & grads_finite,
                             factor=settings.factor, nonfinite=settings.nonfinite,
                             smoothing=_guard.UPDATE_SMOOTHING)

  @staticmethod
  def after_spike(lr: jax.Array, spike: jax.Array, settings: GuardSettings, min_value: Any,
                  guard_state: _guard.GuardState, spiked_at: jax.Array
                  ) -> tuple[jax.Array, jax.Array, _guard.GuardState]:
    """``(rate kept, rate applied to this update, guard state)``: a spike cuts the rate by
    ``settings.cut`` (not below ``min_value``), lowers the guard's ceiling below ``spiked_at``
    (the rate of the update that spiked; ``lower_ceiling``) and, with ``guard_skip``,
    applies 0 to the spiking update. The rate kept is at most the ceiling."""
    if settings.guard:
      guard_state = _guard.lower_ceiling(guard_state, spike, spiked_at, settings.cut,
                                         min_value)
    lr = jax.numpy.where(spike, jax.numpy.maximum(lr * settings.cut, min_value), lr)
    lr = jax.numpy.minimum(lr, guard_state.ceiling)
    applied = jax.numpy.where(spike, 0.0, lr) if settings.skip else lr
    return lr, applied, guard_state

  @staticmethod
  def next_fields(state: Any, lr: jax.Array, ok: jax.Array) -> dict[str, Any]:
    """``count`` + 1, the ``lr`` of this update, ``num_nonfinite`` + 1 unless ``ok``."""
    return dict(count=increment_if(state.count), lr=as_float(lr),
                num_nonfinite=increment_if(state.num_nonfinite, ~ok))
