"""Hypergradient descent: the learning rate follows the gradient of the loss w.r.t. itself."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from lrjax import _packed
from lrjax import _validation as v
from lrjax._guard import GuardState, init_guard
from lrjax._numerics import as_float, choose_bits, device_mean, vdot
from lrjax._sampling import dot, reads_whole, sample
from lrjax.transforms._lr_owner import LROwner


class HypergradientFields(NamedTuple):
  """The named fields of a :class:`HypergradientState` (its logical layout)."""

  count: jax.Array  # type: ignore[assignment]  # shape=(), dtype=int32 (shadows tuple.count)
  lr: jax.Array  # shape=(), dtype=float32.
  num_nonfinite: jax.Array  # shape=(), dtype=int32.
  inner_state: Any
  guard: GuardState  # the spike guard's scalars; num_spikes counts the spikes caught.
  hypergradient: jax.Array  # shape=(), dtype=float32.
  prev_direction: Any  # like params (sampled: a float32 vector of its sample).


@_packed.register
class HypergradientState(_packed.PackedState):
  """State of ``hypergradient`` (its scalars stored packed, the inner optimizer's included:
  ``lrjax._packed``).

  Attributes:
    count: updates so far (saturating).
    lr: the learning rate alpha used at the most recent update (``init_value`` at first).
    num_nonfinite: updates whose gradients were not finite (alpha kept).
    inner_state: the inner optimizer's state.
    hypergradient: the last :math:`h_t = g_t \\cdot u_{t-1}`.
    prev_direction: the inner optimizer's previous direction :math:`u_{t-1}` (one copy of
      params; with ``sample_size`` smaller than the model, its sample).
  """
  _logical = HypergradientFields
  __slots__ = ()

  def log_scalars(self) -> tuple[str, dict[str, Any]]:
    """What ``lrjax.log_values`` logs of this state: a label and its scalars."""
    return "hypergradient", {
        "lr": self.lr,
        "hypergradient": self.hypergradient,
        "num_nonfinite": self.num_nonfinite,
        "num_spikes": self.guard.num_spikes,
    }

@v.checks_finite
def hypergradient(optimizer_factory: Callable[..., optax.GradientTransformation], *,
                  init_value: float, hyper_lr: float, multiplicative: bool = False,
                  min_value: float = 0.0, max_value: Optional[float] = None,
                  axis_name: Optional[str] = None, guard: bool = True,
                  guard_factor: float = 4.0, guard_cut: float = 0.1, guard_nonfinite: int = 3,
                  guard_skip: bool = True,
                  sample_size: Optional[int] = None) -> optax.GradientTransformationExtraArgs:
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
  unchanged and are counted; they are found from :math:`h_t` itself (a non-finite
  element of :math:`g_t` makes it non-finite, :math:`\infty \cdot 0` included), so the
  check makes no pass of its own over the gradients, and a finite :math:`g_t` whose
  :math:`h_t` overflows float32 is counted with them. With ``axis_name`` every replica
  sees the mean :math:`h_t`, so all of them skip alike.

  Args:
    optimizer_factory: ``learning_rate -> optax.GradientTransformation`` (``optax.sgd``, ``optax.adam`` ...).
    init_value: :math:`\alpha_0` > 0.
    hyper_lr: :math:`\beta` >= 0.
    multiplicative: use the normalized multiplicative rule.
    min_value: floor of :math:`\alpha`, >= 0.
    max_value: ceiling of :math:`\alpha` (none when ``None``).
    axis_name: average :math:`h_t` (and the multiplicative rule's norms) over this mapped
      axis so replicas keep one :math:`\alpha`.
    guard, guard_factor, guard_cut, guard_nonfinite: the spike guard shared with
      the stateful schedules (``lrjax._guard``, on by default), on the loss passed
      as ``update(..., value=loss)`` (without it, on runs of non-finite
      gradients): a spike multiplies :math:`\alpha` by ``guard_cut`` at once and caps
      it for the rest of the run at :math:`\sqrt{\text{guard\_cut}}` times the rate that
      made the spiking loss (``state.guard.ceiling``).
    guard_skip: at a spike also skip this update (its step is 0; the inner
      optimizer's state still takes the gradient).
    sample_size: ``None`` (default): :math:`h_t` is the exact inner product, as in the
      paper, and :math:`u_{t-1}` is kept whole (one copy of the parameters), at two passes
      over them per update beyond the optimizer's (g·u and writing :math:`u_t`). An
      integer :math:`k`: for a model of more than :math:`k` parameters both are read from
      a fixed sample of about :math:`k` coordinates (``lrjax._sampling.sample``, as
      ``learned_controller`` reads its statistics; weighted so that the sampled inner
      product estimates the whole one), so an update makes no pass over the parameters of
      its own and the state holds :math:`k` floats instead of a copy of them; non-finite
      gradients are then seen where the sample reads them (a non-finite loss passed as
      ``value`` always is, by the guard). A model of at most :math:`k` parameters is read
      whole, as with ``None`` (its sample would be the whole model, copied into it every
      update).

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
  owner = LROwner.build(fn, optimizer_factory)
  v.positive(fn, "init_value", init_value)
  v.non_negative(fn, "hyper_lr", hyper_lr)
  v.upper_bound(fn, "max_value", max_value, "min_value", min_value)
  settings = owner.guard_settings(guard, guard_factor, guard_cut, guard_nonfinite, guard_skip)
  if sample_size is not None:
    v.integer(fn, "sample_size", sample_size, 1)

  def sampled(tree) -> bool:
    """Whether g·u is read from a sample: only for a model larger than it (a sample of the
    whole model is the exact product, read at the cost of copying the model into it)."""
    return sample_size is not None and not reads_whole(tree, sample_size)

  def reader(tree):
    """``(read, inner)``: what is kept of a tree, and the inner product of two such."""
    if sampled(tree):
      return (lambda t: sample(t, sample_size)), dot
    return (lambda t: t), vdot

  def init_fn(params):
    read, _ = reader(params)
    return HypergradientState(**owner.init_fields(params, init_value),
                              guard=init_guard(), hypergradient=as_float(0.0),
                              prev_direction=jax.tree.map(jnp.zeros_like, read(params)))

  def update_fn(updates, packed, params=None, **extra_args):
    state = packed.view()
    read, inner = reader(updates)
    # u_{t-1} is finite (it is replaced only by finite directions), and a non-finite element
    # of g makes g·u non-finite (inf·0 is NaN): the finite check is g·u's own reduction, not
    # another pass over the gradients. (A finite g whose g·u overflows float32 counts as
    # non-finite too: alpha could not use it.)
    g, prev = read(updates), state.prev_direction
    if multiplicative:  # the norms averaged with h (one collective), so replicas agree on alpha
      stats = device_mean(jnp.stack([inner(g, prev), inner(g, g), inner(prev, prev)]),
                          axis_name)
      h, norms = stats[0], jnp.sqrt(stats[1]) * jnp.sqrt(stats[2])
      finite = jnp.isfinite(h) & jnp.isfinite(norms)
      cosine = jnp.where(norms > 0, h / jnp.where(norms > 0, norms, 1.0), 0.0)
      alpha = state.lr * (1 - hyper_lr * cosine)
    else:
      h = device_mean(inner(g, prev), axis_name)
      finite = jnp.isfinite(h)
      alpha = state.lr - hyper_lr * h
    alpha = jnp.maximum(alpha, min_value)
    if max_value is not None:
      alpha = jnp.minimum(alpha, max_value)
    alpha = jnp.where(finite, alpha, state.lr)
    guard_state, spike = owner.spike(state.guard, extra_args.get("value"), finite, settings,
                                     axis_name)
    alpha, applied, guard_state = owner.after_spike(alpha, spike, settings, min_value,
                                                    guard_state, state.lr)
    direction, inner_state = owner.direction(updates, state.inner_state, params, **extra_args)
    return owner.step(direction, applied), HypergradientState(
        **owner.next_fields(state, alpha, finite), inner_state=inner_state, guard=guard_state,
        hypergradient=jnp.where(finite, h, state.hypergradient),
        # Chosen by bits (no select, no cond: a cond copies the buffer every update), and on
        # the applied rate, which depends on h: XLA then overwrites the old direction in
        # place after h has read it, instead of copying it first.
        prev_direction=choose_bits(finite & (applied == applied), read(direction),
                                   state.prev_direction))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
