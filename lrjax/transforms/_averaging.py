"""Weight averaging as gradient transformations: EMA, SWA and LAWA of the parameters.

Each passes the updates through unchanged and keeps the averaged parameters in
its state; ``lrjax.averaged_params(opt_state)`` finds them anywhere in an
optimizer state. The average is of the parameters each update *produces*
(``params + updates``), so place the transformation last in a chain.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lrjax import _validation as v
from lrjax._numerics import counter, increment_if, ring_next


def _produced(params, updates):
  if params is None:
    raise ValueError("lrjax: weight averaging needs params: call update(updates, state, params)")
  return optax.apply_updates(params, updates)


class EmaParamsState(NamedTuple):
  """State of ``ema_params``: ``ema`` divided by ``correction`` is the average."""
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as Optax states do
  ema: Any
  correction: jax.Array

  def averaged(self) -> Any:
    """The average (what ``lrjax.averaged_params`` returns)."""
    return jax.tree.map(lambda e: (e / self.correction).astype(e.dtype), self.ema)


class SwaState(NamedTuple):
  """State of ``swa``: the running mean of ``num_averaged`` snapshots."""
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as Optax states do
  num_averaged: jax.Array
  mean: Any

  def averaged(self) -> Any:
    """The average (what ``lrjax.averaged_params`` returns)."""
    return self.mean


class LawaState(NamedTuple):
  """State of ``lawa``: the latest ``k`` snapshots, their sum and how many are held."""
  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as Optax states do
  snapshots: Any
  total: Any
  filled: jax.Array
  position: jax.Array

  def averaged(self) -> Any:
    """The average (what ``lrjax.averaged_params`` returns)."""
    filled = jnp.maximum(self.filled, 1)
    return jax.tree.map(lambda t: (t / filled).astype(t.dtype), self.total)


@v.checks_finite
def ema_params(decay: float = 0.999, debias: bool = True) -> optax.GradientTransformation:
  r"""Exponential moving average of the parameters.

  .. math::
    e_n = \beta e_{n-1} + (1 - \beta)\theta_n, \qquad
    \bar\theta_n = e_n / (1 - \beta^n) \text{ (debias)} \quad\text{or}\quad e_n

  With ``debias`` the average starts at :math:`e_0 = 0` and is divided by
  :math:`1 - \beta^n` after :math:`n` updates (Adam's bias correction); without
  it, :math:`e_0` is the initial parameters.

  Args:
    decay: :math:`\beta` in [0, 1).
    debias: start at zero and correct the bias.

  Returns:
    An ``optax.GradientTransformation`` that passes updates through.

  Example:
    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = optax.chain(optax.sgd(1.0), lrjax.ema_params(0.5))
    >>> params = jnp.array([4.0])
    >>> state = tx.init(params)
    >>> for _ in range(2):
    ...   updates, state = tx.update(jnp.array([1.0]), state, params)
    ...   params = optax.apply_updates(params, updates)
    >>> print(lrjax.averaged_params(state))  # (0.25 * 3 + 0.5 * 2) / 0.75
    [2.3333333]

  References:
    Polyak & Juditsky, `Acceleration of Stochastic Approximation by Averaging
    <https://doi.org/10.1137/0330046>`_, 1992; `optax.ema
    <https://optax.readthedocs.io/en/latest/api/transformations.html>`_.
  """
  v.in_range("ema_params", "decay", decay, 0.0, 1.0, lo_open=False)

  def init_fn(params):
    start = jax.tree.map(jnp.zeros_like if debias else jnp.array, params)
    return EmaParamsState(count=counter(), ema=start, correction=jnp.ones([], jnp.float32))

  def update_fn(updates, state, params=None):
    new = _produced(params, updates)
    ema = jax.tree.map(lambda e, p: (decay * e + (1 - decay) * p).astype(e.dtype), state.ema,
                       new)
    count = increment_if(state.count)
    correction = (1 - decay ** count.astype(jnp.float32)) if debias else state.correction
    return updates, EmaParamsState(count=count, ema=ema, correction=correction)

  return optax.GradientTransformation(init_fn, update_fn)


@v.checks_finite
def swa(start_step: int, every: int = 1) -> optax.GradientTransformation:
  r"""Stochastic weight averaging: the equal-weight mean of snapshots.

  The parameters produced by updates ``start_step``, ``start_step + every``,
  ... (counting updates from 0) are averaged with equal weights,
  :math:`\bar\theta \leftarrow \bar\theta + (\theta - \bar\theta)/(m + 1)`.
  Until the first snapshot the average holds the initial parameters. Pair
  it with ``lrjax.swa_schedule`` for the SWA learning rate.

  Args:
    start_step: the first update averaged, >= 0.
    every: updates between snapshots (the cycle length ``c``), >= 1.

  Returns:
    An ``optax.GradientTransformation`` that passes updates through.

  Example:
    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = optax.chain(optax.sgd(1.0), lrjax.swa(start_step=1, every=2))
    >>> params = jnp.array([0.0])
    >>> state = tx.init(params)
    >>> for _ in range(5):  # produces 1, 2, 3, 4, 5; updates 1 and 3 are averaged
    ...   updates, state = tx.update(jnp.array([-1.0]), state, params)
    ...   params = optax.apply_updates(params, updates)
    >>> print(lrjax.averaged_params(state))
    [3.]

  References:
    Izmailov et al., `Averaging Weights Leads to Wider Optima and Better
    Generalization <https://arxiv.org/abs/1803.05407>`_, UAI 2018.
  """
  v.integer("swa", "start_step", start_step, minimum=0)
  v.integer("swa", "every", every, minimum=1)

  def init_fn(params):
    return SwaState(count=counter(), num_averaged=counter(), mean=jax.tree.map(jnp.array, params))

  def update_fn(updates, state, params=None):
    new = _produced(params, updates)
    n = state.count
    take = (n >= start_step) & ((n - start_step) % every == 0)
    m = state.num_averaged.astype(jnp.float32)

    def average():  # only at a snapshot (a lax.cond): other updates pay no O(params) work
      return jax.tree.map(lambda a, p: (a + (p - a) / (m + 1)).astype(a.dtype), state.mean, new)

    return updates, SwaState(count=increment_if(n),
                             num_averaged=increment_if(state.num_averaged, take),
                             mean=jax.lax.cond(take, average, lambda: state.mean))

  return optax.GradientTransformation(init_fn, update_fn)


@v.checks_finite
def lawa(k: int, every: int) -> optax.GradientTransformation:
  r"""Latest weight averaging: the mean of the latest ``k`` snapshots.

  A snapshot is the parameters after every ``every`` updates (updates
  ``every - 1``, ``2 every - 1``, ... counting from 0); the average is the
  mean of the latest ``k`` (of all, while fewer are held). Memory: ``k``
  copies of the parameters plus their running sum. Until the first snapshot
  the average holds the initial parameters.

  Args:
    k: snapshots averaged, >= 1.
    every: updates between snapshots, >= 1.

  Returns:
    An ``optax.GradientTransformation`` that passes updates through.

  Example:
    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = optax.chain(optax.sgd(1.0), lrjax.lawa(k=2, every=2))
    >>> params = jnp.array([0.0])
    >>> state = tx.init(params)
    >>> for _ in range(6):  # snapshots 2, 4, 6: the latest two are 4 and 6
    ...   updates, state = tx.update(jnp.array([-1.0]), state, params)
    ...   params = optax.apply_updates(params, updates)
    >>> print(lrjax.averaged_params(state))
    [5.]

  References:
    Kaddour, `Stop Wasting My Time! Saving Days of ImageNet and BERT Training with
    Latest Weight Averaging <https://arxiv.org/abs/2209.14981>`_, 2022.
  """
  v.integer("lawa", "k", k, minimum=1)
  v.integer("lawa", "every", every, minimum=1)

  def init_fn(params):
    return LawaState(count=counter(),
                     snapshots=jax.tree.map(lambda p: jnp.zeros((k,) + p.shape, p.dtype), params),
                     total=jax.tree.map(jnp.array, params), filled=counter(),
                     position=counter())

  def update_fn(updates, state, params=None):
    new = _produced(params, updates)
    take = (state.count + 1) % every == 0
    pos = state.position

    def put(buf, tot, p):
      # Before the first snapshot ``total`` holds the initial parameters.
      tot = jnp.where(state.filled == 0, jnp.zeros_like(tot), tot - buf[pos])
      return buf.at[pos].set(p), (tot + p).astype(p.dtype)

    def snapshot():  # only every ``every`` updates (a lax.cond)
      pairs = jax.tree.map(put, state.snapshots, state.total, new)
      return (jax.tree.map(lambda _, pr: pr[0], new, pairs),
              jax.tree.map(lambda _, pr: pr[1], new, pairs))

    snapshots, total = jax.lax.cond(take, snapshot, lambda: (state.snapshots, state.total))
    return updates, LawaState(
        count=increment_if(state.count), snapshots=snapshots, total=total,
        filled=jnp.where(take, jnp.minimum(state.filled + 1, k), state.filled),
        position=jnp.where(take, ring_next(pos, k), pos).astype(jnp.int32))

  return optax.GradientTransformation(init_fn, update_fn)
