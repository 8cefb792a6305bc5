"""Weight decay tied to, or freed from, the learning-rate schedule."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from lrjax import _validation as v
from lrjax.schedules._base import as_schedule
from lrjax._numerics import as_float, counter, increment_if

_COUPLINGS = ("relative", "independent", "lr")


class WeightDecayState(NamedTuple):
  """State of ``scheduled_weight_decay``.

  Attributes:
    count: updates so far; both schedules are evaluated at it.
    max_lr: the largest learning rate seen so far ("relative" coupling without ``max_lr``).
    decay: the decay coefficient applied at the most recent update (``lambda_t * coef``).
  """
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as Optax states do
  max_lr: jax.Array
  decay: jax.Array


@v.checks_finite
def scheduled_weight_decay(weight_decay: Any, schedule: Any = None, coupling: str = "relative",
                           mask: Any = None,
                           max_lr: Optional[float] = None) -> optax.GradientTransformation:
  r"""Decoupled weight decay whose strength follows, or ignores, the LR schedule.

  Place it after the learning-rate scaling (the updates are already
  :math:`-\eta_t u_t`); it adds :math:`-\lambda_t c_t \theta_t`:

  - ``"lr"``: :math:`c_t = \eta_t`. Decay proportional to the full learning
    rate, what ``optax.adamw`` and PyTorch ``AdamW`` do (tested equal). Its
    effective strength :math:`\eta\lambda` changes whenever you retune
    :math:`\eta`, so :math:`\lambda` must be retuned with it.
  - ``"relative"``: :math:`c_t = \eta_t / \eta_{max}`. Decay follows the
    schedule's shape but not its scale: the schedule multiplier of Loshchilov &
    Hutter's AdamW, and AdamC's :math:`\lambda\gamma_t/\gamma_{max}` (Defazio
    2025). The right choice when sweeping the peak learning rate: the optimal
    :math:`\lambda` stays put. :math:`\eta_{max}` is ``max_lr``, or else the
    largest :math:`\eta_t` seen so far.
  - ``"independent"``: :math:`c_t = 1`. Fully decoupled (Wortsman et al.
    2023): the decay per step ignores the learning rate, so long low-LR tails
    still regularize and :math:`\lambda` is about 1/(steps) scale
    (e.g. 1e-4 rather than AdamW's 0.1).

  Args:
    weight_decay: :math:`\lambda`: a float or any lrjax schedule (a
      regularization schedule), evaluated at the update count.
    schedule: the learning-rate schedule :math:`\eta_t` (needed for "lr" and "relative").
    coupling: ``"relative"``, ``"independent"`` or ``"lr"``.
    mask: a pytree of bools (or a callable ``params -> pytree``) like
      ``optax.add_decayed_weights``'s: decay only where True.
    max_lr: :math:`\eta_{max}` for "relative"; by default the running maximum.

  Returns:
    An ``optax.GradientTransformation``; ``update`` needs ``params``.

  Example:
    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = optax.chain(optax.sgd(0.1), lrjax.scheduled_weight_decay(0.01, coupling="independent"))
    >>> params = jnp.array([2.0])
    >>> updates, _ = tx.update(jnp.array([0.0]), tx.init(params), params)
    >>> print(updates)  # -0.01 * 2
    [-0.02]

  References:
    Loshchilov & Hutter, `Decoupled Weight Decay Regularization
    <https://arxiv.org/abs/1711.05101>`_, ICLR 2019;
    Wortsman et al., `Small-scale proxies for large-scale Transformer training
    instabilities <https://arxiv.org/abs/2309.14322>`_, 2023;
    Defazio, `Why Gradients Rapidly Increase Near the End of Training
    <https://arxiv.org/abs/2506.02285>`_, 2025.
  """
  fn = "scheduled_weight_decay"
  v.one_of(fn, "coupling", coupling, _COUPLINGS)
  wd = as_schedule(weight_decay, fn, "weight_decay")
  if coupling != "independent" and schedule is None:
    raise ValueError(f"lrjax.{fn}: coupling={coupling!r} needs the learning-rate schedule: "
                     f"pass schedule=")
  lr_schedule = None if schedule is None else as_schedule(schedule, fn, "schedule")
  if max_lr is not None:
    v.positive(fn, "max_lr", max_lr)

  def init_fn(params):
    del params
    return WeightDecayState(count=counter(), max_lr=as_float(0.0), decay=as_float(0.0))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(f"lrjax.{fn}: update needs params")
    lam = as_float(wd(state.count))
    biggest = state.max_lr
    if coupling == "independent":
      coef = as_float(1.0)
    else:
      eta = as_float(lr_schedule(state.count))
      biggest = jnp.maximum(state.max_lr, eta)
      if coupling == "lr":
        coef = eta
      else:
        top = as_float(max_lr) if max_lr is not None else biggest
        coef = eta / jnp.where(top > 0, top, 1.0)
    decay = lam * coef
    new = jax.tree.map(lambda u, p: (u - decay * p).astype(u.dtype), updates, params)
    return new, WeightDecayState(count=increment_if(state.count), max_lr=biggest,
                                 decay=decay)

  tx = optax.GradientTransformation(init_fn, update_fn)
  return tx if mask is None else optax.masked(tx, mask)
