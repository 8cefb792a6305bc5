"""Hypergradient descent: the learning rate follows the gradient of the loss w.r.t. itself."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from lrjax import _validation as v
from lrjax.stateful._core import as_stat, counter, device_mean, saturating_increment, select_tree


class HypergradientState(NamedTuple):
  """State of ``hypergradient``.

  Attributes:
    count: updates so far.
    lr: the learning rate alpha used at the most recent update (``init_value`` at first).
    hypergradient: the last :math:`h_t = g_t \\cdot u_{t-1}`.
    prev_direction: the inner optimizer's previous direction :math:`u_{t-1}` (one copy of params).
    inner_state: the inner optimizer's state.
    num_nonfinite: updates whose gradients were not finite (alpha kept).
  """
  count: jax.Array
  lr: jax.Array
  hypergradient: jax.Array
  prev_direction: Any
  inner_state: Any
  num_nonfinite: jax.Array


def _dot(a, b):
  return sum(jnp.vdot(x.astype(jnp.float32), y.astype(jnp.float32))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@v.checks_finite
def hypergradient(optimizer_factory: Callable[..., optax.GradientTransformation], *,
                  init_value: float, hyper_lr: float, multiplicative: bool = False,
                  min_value: float = 0.0, max_value: Optional[float] = None,
                  axis_name: Optional[str] = None) -> optax.GradientTransformationExtraArgs:
  r"""Hypergradient descent on the learning rate (Baydin et al., ICLR 2018).

  The inner optimizer built at learning rate 1 gives the direction
  :math:`u_t` (for SGD :math:`u_t = -g_t`, for Adam minus its bias-corrected
  direction); the update is :math:`\alpha_t u_t`. Since
  :math:`\theta_{t-1} = \theta_{t-2} + \alpha u_{t-1}`, the derivative of the
  loss w.r.t. the learning rate is :math:`h_t = g_t \cdot u_{t-1}`, and

  .. math::
    \alpha_t = \alpha_{t-1} - \beta\, h_t \quad\text{(additive)}, \qquad
    \alpha_t = \alpha_{t-1}\left(1 - \beta \frac{h_t}{\|g_t\|\,\|u_{t-1}\|}\right)
    \quad\text{(multiplicative)}

  then clipped to ``[min_value, max_value]``. For SGD the additive rule is the
  paper's SGD-HD, :math:`\alpha_t = \alpha_{t-1} + \beta\, g_t \cdot g_{t-1}`;
  with ``optax.adam`` it is Adam-HD. Scale of ``hyper_lr`` (:math:`\beta`):
  the additive rule's :math:`h_t` carries the squared gradient scale, so the
  paper used 1e-3 for SGD-HD and 1e-7 for Adam-HD; the multiplicative rule is
  normalized (:math:`h_t / (\|g_t\|\|u_{t-1}\|)` is a cosine in [-1, 1]), so
  :math:`\beta` is the largest relative change of :math:`\alpha` per step
  (e.g. 0.01). Non-finite gradients leave :math:`\alpha` and :math:`u_{t-1}`
  unchanged and are counted.

  Args:
    optimizer_factory: ``learning_rate -> optax.GradientTransformation`` (``optax.sgd``, ``optax.adam`` ...).
    init_value: :math:`\alpha_0` > 0.
    hyper_lr: :math:`\beta` >= 0.
    multiplicative: use the normalized multiplicative rule.
    min_value: floor of :math:`\alpha`, >= 0.
    max_value: ceiling of :math:`\alpha` (none when ``None``).
    axis_name: average :math:`h_t` over this mapped axis so replicas keep one :math:`\alpha`.

  Returns:
    An ``optax.GradientTransformationExtraArgs``; ``lrjax.current_lr`` reads :math:`\alpha`.

  Example:
    >>> import jax.numpy as jnp, optax, lrjax
    >>> tx = lrjax.hypergradient(optax.sgd, init_value=0.1, hyper_lr=0.01)
    >>> params = jnp.array([1.0])
    >>> state = tx.init(params)
    >>> for _ in range(2):
    ...   updates, state = tx.update(params, state, params)  # gradient of p**2 / 2
    ...   params = optax.apply_updates(params, updates)
    >>> print(round(float(lrjax.current_lr(state)), 4))  # 0.1 + 0.01 * (0.9 * 1.0)
    0.109

  References:
    Baydin et al., `Online Learning Rate Adaptation with Hypergradient Descent
    <https://arxiv.org/abs/1703.04782>`_, ICLR 2018.
  """
  fn = "hypergradient"
  if not callable(optimizer_factory):
    raise ValueError(f"lrjax.{fn}: optimizer_factory must be callable, "
                     f"got optimizer_factory={optimizer_factory!r}")
  v.positive(fn, "init_value", init_value)
  v.non_negative(fn, "hyper_lr", hyper_lr)
  v.non_negative(fn, "min_value", min_value)
  if max_value is not None:
    v.check(fn, "max_value", max_value, lambda a: a >= min_value,
            f"finite and >= min_value={min_value!r}")
  inner = optax.with_extra_args_support(optimizer_factory(1.0))

  def init_fn(params):
    return HypergradientState(count=counter(), lr=as_stat(init_value),
                              hypergradient=as_stat(0.0),
                              prev_direction=jax.tree.map(jnp.zeros_like, params),
                              inner_state=inner.init(params), num_nonfinite=counter())

  def update_fn(updates, state, params=None, **extra_args):
    finite = jnp.all(jnp.asarray([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(updates)]))
    h = device_mean(as_stat(_dot(updates, state.prev_direction)), axis_name)
    if multiplicative:
      norms = jnp.sqrt(_dot(updates, updates)) * jnp.sqrt(
          _dot(state.prev_direction, state.prev_direction))
      cosine = jnp.where(norms > 0, h / jnp.where(norms > 0, norms, 1.0), 0.0)
      alpha = state.lr * (1 - hyper_lr * cosine)
    else:
      alpha = state.lr - hyper_lr * h
    alpha = jnp.maximum(alpha, min_value)
    if max_value is not None:
      alpha = jnp.minimum(alpha, max_value)
    alpha = jnp.where(finite, alpha, state.lr)
    direction, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
    out = jax.tree.map(lambda u: (alpha * u).astype(u.dtype), direction)
    return out, HypergradientState(
        count=saturating_increment(state.count), lr=alpha,
        hypergradient=jnp.where(finite, h, state.hypergradient),
        prev_direction=select_tree(finite, direction, state.prev_direction),
        inner_state=inner_state,
        num_nonfinite=saturating_increment(state.num_nonfinite, (~finite).astype(jnp.int32)))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
