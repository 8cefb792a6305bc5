"""Window search: probe candidate learning rates from a snapshot, keep the best, roll back."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import _packed
from lrjax import _validation as v
from lrjax._numerics import all_finite, as_float, float_dtype, read_value, ring_next
from lrjax.schedules._base import as_schedule
from lrjax.transforms._lr_owner import LROwner

TRAIN, PROBE, ROLLBACK = 0, 1, 2


class WindowSearchFields(NamedTuple):
  """The named fields of a :class:`WindowSearchState` (its logical layout)."""

  count: jax.Array  # type: ignore[assignment]  # shape=(), dtype=int32 (shadows tuple.count)
  lr: jax.Array  # shape=(), dtype=float32.
  num_nonfinite: jax.Array  # shape=(), dtype=int32.
  inner_state: Any
  multiplier: jax.Array  # shape=(), dtype=float32.
  phase: jax.Array  # shape=(), dtype=int32.
  position: jax.Array  # shape=(), dtype=int32.
  snapshot_params: Any  # like params.
  snapshot_inner: Any  # like inner_state.
  probe_losses: jax.Array  # shape=(len(candidates), probe_steps), dtype=float32.
  scores: jax.Array  # shape=(len(candidates),), dtype=float32.
  winner: jax.Array  # shape=(), dtype=int32.


@_packed.register
class WindowSearchState(_packed.PackedState):
  """State of ``window_search`` (its scalars stored packed: ``lrjax._packed``).

  Attributes:
    count: updates so far (saturating).
    lr: the learning rate of the most recent update (the probed one during a probe).
    num_nonfinite: non-finite losses seen, and probes that ended with a non-finite inner state.
    inner_state: the inner optimizer's state (after a rollback, ``phase == 2``, the abandoned
      probe's: the next update starts from ``snapshot_inner``).
    multiplier: the chosen multiplier of ``base``; compounds window after window.
    phase: what the most recent update was: 0 train, 1 probe, 2 rollback (no step taken).
    position: the next update's place in its window, ``count % window`` (carried:
      ``_numerics.ring_next``).
    snapshot_params: the parameters at the window's start (one extra copy).
    snapshot_inner: the inner state at the window's start.
    probe_losses: the losses seen by each candidate's probe, ``(len(candidates), probe_steps)``.
    scores: each candidate's loss forecast to the window's end, from the last search.
    winner: index of the candidate chosen by the last search.
  """
  _logical = WindowSearchFields
  __slots__ = ()

  def log_scalars(self) -> tuple[str, dict[str, Any]]:
    """What ``lrjax.log_values`` logs of this state: a label and its scalars."""
    return "window_search", {
        "lr": self.lr,
        "multiplier": self.multiplier,
        "phase": self.phase,
        "num_nonfinite": self.num_nonfinite,
    }

def _rate_grid(probe_steps: int, num: int = 96) -> np.ndarray:
  """Decay rates b of ``c + a exp(-b t)`` tried by the fit, per step.

  From 0.316 / P (a curve still falling at the probe's end: at most 3.7x the
  observed drop remains) to 50 / P (a curve that has flattened), 4.3% apart.
  """
  return np.logspace(-0.5, np.log10(50.0), num) / probe_steps


def forecast(losses: jax.Array, horizon: Any) -> jax.Array:
  """Fits ``c + a exp(-b t)`` to each row of ``losses`` and evaluates it at ``horizon``.

  ``losses[i, t]`` is the loss after ``t`` steps of candidate ``i``. For each
  ``b`` of a fixed grid, ``(c, a)`` is the least-squares solution; the ``b``
  with the smallest residual wins (the AutoLRS forecast, without an iterative
  solver). A row with a non-finite entry scores +inf.
  """
  p = losses.shape[-1]
  t = jnp.arange(p, dtype=losses.dtype)
  rates = jnp.asarray(_rate_grid(p), losses.dtype)
  basis = jnp.exp(-rates[:, None] * t[None, :])                  # (B, P)
  finite = jnp.all(jnp.isfinite(losses), axis=-1)
  y = jnp.where(jnp.isfinite(losses), losses, 0.0)               # (C, P)
  # Centered least squares for y = c + a * e: a = cov(e, y) / var(e).
  e_c = basis - jnp.mean(basis, axis=-1, keepdims=True)          # (B, P)
  y_c = y - jnp.mean(y, axis=-1, keepdims=True)                  # (C, P)
  # Full float32 on every backend: NVIDIA GPUs run float32 matmuls in TF32 by default,
  # which moved this forecast by 2e-4 relative (and could move a decision).
  cov = jnp.matmul(y_c, e_c.T, precision=jax.lax.Precision.HIGHEST)
  a = cov / jnp.sum(e_c ** 2, axis=-1)[None, :]                   # (C, B)
  c = jnp.mean(y, axis=-1, keepdims=True) - a * jnp.mean(basis, axis=-1)[None, :]
  fitted = c[..., None] + a[..., None] * basis[None]             # (C, B, P)
  sse = jnp.sum((fitted - y[:, None, :]) ** 2, axis=-1)          # (C, B)
  best = jnp.argmin(sse, axis=-1)
  rows = jnp.arange(losses.shape[0])
  value = c[rows, best] + a[rows, best] * jnp.exp(-rates[best] * horizon)
  return jnp.where(finite, value, jnp.inf)


@v.checks_finite
def window_search(optimizer_factory: Callable[..., optax.GradientTransformation], base: Any,
                  window: int = 500, probe_steps: int = 50,
                  candidates: Sequence[float] = (0.5, 1.0, 2.0),
                  axis_name: Optional[str] = None) -> optax.GradientTransformationExtraArgs:
  r"""Windowed learning-rate search with probes and rollback, all in graph.

  Training runs in windows of ``window`` updates. At a window's start the
  parameters and the inner optimizer state are saved. Then each candidate
  multiple :math:`m_i` of the current learning rate :math:`\eta = \text{base}(t)
  \cdot M` is probed for ``probe_steps`` updates from that same snapshot: the
  first ``probe_steps - 1`` updates train at :math:`m_i \eta`, the last emits
  the update that restores the snapshot (``snapshot - params``), and the next
  update starts from the snapshot's inner state. The ``probe_steps`` losses each probe saw are fit
  by :math:`c + a e^{-b\tau}` (least squares over a grid of rates ``b``) and
  forecast to the window's end, :math:`\tau = W - n P`, not scored by the raw
  last loss, which favours small rates (short-horizon bias, Wu et al. 2018).
  The best forecast wins: :math:`M \leftarrow M m_{i^*}`, and the rest of the
  window trains at :math:`\text{base}(t) \cdot M`. A candidate that goes
  non-finite scores :math:`+\infty` (below); if all do, the smallest multiple wins.

  Cost: ``len(candidates) * probe_steps / window`` of the updates are probes
  whose progress is discarded (30% with the defaults), and one extra copy of the
  parameters and of the inner state. It pays when the best learning rate is unknown or
  drifts over training by more than the overhead costs, e.g. a base far off
  (it moves by a factor ``max(candidates)`` per window) or a long run where a
  fixed schedule would be mistuned; on a well-tuned schedule it costs its
  probe fraction. Rollback is exact up to float rounding (exact where a
  parameter moved less than a factor 2 from the snapshot). An update makes the
  passes over the parameters that the inner optimizer and the caller's
  ``apply_updates`` make anyway, and no copy of them (read from the compiled
  program and held by a test): the snapshot is taken behind a ``lax.cond`` at a
  window's start; the rollback and the restore of the inner state are selects
  with a scalar predicate inside those passes, so an update reads the snapshot
  (one read per parameter and per inner-state element) but writes nothing more.
  The inner state is restored one update late: after a rollback,
  ``state.inner_state`` still holds the abandoned probe's, and the next update
  starts from ``state.snapshot_inner``.

  Non-finite values: a probe whose loss is non-finite, or whose inner state is
  non-finite at its end (a non-finite gradient stays in a moment estimate), scores
  :math:`+\infty`; a probe's non-finite update entries are zeroed, so the parameters
  stay finite and the rollback exact (an inner optimizer without state, plain SGD,
  shows a non-finite gradient only through the loss). Non-finite updates outside
  probes are not filtered (wrap in ``optax.apply_if_finite`` for that).

  The inner optimizer is ``optimizer_factory(1.0)``: its update is a direction
  that the learning rate scales (true of ``optax.sgd``, ``adam``, ``adamw``,
  ``lion`` ...).

  Args:
    optimizer_factory: ``learning_rate -> optax.GradientTransformation``, e.g. ``optax.adamw``.
    base: a float or a pure schedule: the learning rate before the search's multiplier.
    window: updates per window.
    probe_steps: updates per probe (>= 3); ``len(candidates) * probe_steps < window``.
    candidates: positive multiples of the current learning rate to probe.
    axis_name: average the loss over this mapped axis so every replica chooses alike.

  Returns:
    An ``optax.GradientTransformationExtraArgs``; ``update(grads, state, params,
    *, value)`` needs the parameters and the loss at them.

  Example:
    >>> import jax, jax.numpy as jnp, optax, lrjax
    >>> tx = lrjax.window_search(optax.sgd, 0.01, window=40, probe_steps=5)
    >>> params = jnp.ones(3)
    >>> state = tx.init(params)
    >>> @jax.jit  # one compiled update; its decisions stay in the graph
    ... def step(params, state):
    ...   loss, grads = jax.value_and_grad(lambda p: jnp.sum(p ** 2))(params)
    ...   updates, state = tx.update(grads, state, params, value=loss)
    ...   return optax.apply_updates(params, updates), state
    >>> for _ in range(40):
    ...   params, state = step(params, state)
    >>> float(state.multiplier)  # too small a rate: the search doubled it
    2.0

  References:
    Jin et al., `AutoLRS: Automatic Learning-Rate Schedule by Bayesian Optimization on
    the Fly <https://arxiv.org/abs/2105.10762>`_, ICLR 2021;
    Wu et al., `Understanding Short-Horizon Bias in Stochastic Meta-Optimization
    <https://arxiv.org/abs/1803.02021>`_, ICLR 2018.
  """
  fn = "window_search"
  owner = LROwner.build(fn, optimizer_factory)
  base = as_schedule(base, fn, "base")
  v.integer(fn, "window", window, minimum=2)
  v.integer(fn, "probe_steps", probe_steps, minimum=3)
  cands = v.concrete(list(candidates)) if len(candidates) else None
  if cands is None or cands.ndim != 1:
    raise ValueError(f"lrjax.{fn}: candidates must be a non-empty sequence of numbers, "
                     f"got candidates={candidates!r}")
  v.check(fn, "candidates", cands, lambda a: np.isfinite(a) & (a > 0), "finite and > 0")
  n, p, w = len(cands), int(probe_steps), int(window)
  if n * p >= w:
    v.fail(fn, "window", f"> len(candidates) * probe_steps = {n * p}", window)
  multiples = jnp.asarray(cands, float_dtype())
  smallest = int(np.argmin(cands))
  horizon = float(w - n * p)

  def init_fn(params):
    fields = owner.init_fields(params, base(0))
    copy = lambda tree: jax.tree.map(jnp.array, tree)  # noqa: E731
    return WindowSearchState(
        **fields, multiplier=jnp.ones([], float_dtype()), phase=jnp.zeros([], jnp.int32),
        position=jnp.zeros([], jnp.int32),
        snapshot_params=copy(params), snapshot_inner=copy(fields["inner_state"]),
        probe_losses=jnp.zeros((n, p), float_dtype()),
        scores=jnp.full((n,), jnp.nan, float_dtype()),
        winner=jnp.asarray(int(np.argmin(np.abs(cands - 1.0))), jnp.int32))

  def update_fn(updates, packed, params=None, *, value, **extra_args):
    state = packed.view()
    owner.require_params(params, "to snapshot and roll back")
    loss, finite = read_value(value, axis_name, f"lrjax.{fn}")
    # The update's place in the window, its candidate and its step in that candidate's probe,
    # with no integer division (k // p and k % p, for the probing candidates c < n).
    k = state.position
    in_probe = k < n * p
    c = sum((k >= i * p).astype(jnp.int32) for i in range(1, n)) if n > 1 else jnp.int32(0)
    j = jnp.minimum(k - c * p, p - 1)
    at_start = k == 0
    rollback = in_probe & (j == p - 1)
    # What an ordinary update costs is decided by XLA's buffers, not by the arithmetic. A
    # conditional that passes a parameter-sized value through, or reads one that the update
    # then overwrites in place without depending on the conditional's result, makes XLA copy
    # it on every update, taken or not; so does a select after the inner optimizer (XLA
    # recomputes its new state in the parameters' pass from a buffer already overwritten).
    # The version with the restore and the probe guard in conditionals cost 3.5x per update
    # at 2 M parameters on the CPU. Here:
    # - one conditional reads those buffers, only at a window's start (the snapshot) and at
    #   a probe's end (did the probe leave a non-finite inner state? a non-finite gradient
    #   stays in a moment estimate: that candidate then scores +inf, like a non-finite loss);
    #   both in-place updates read its result (the snapshot), so XLA orders them after it;
    # - the restore of the inner state is a select before the inner optimizer reads it, one
    #   update late (the update after a rollback starts from the snapshot);
    # - the rollback of the parameters and the probe guard are selects in the update's pass.
    # The conditional takes the parameter-sized leaves only: the snapshot's scalars (the
    # inner optimizer's count, say) are chosen outside it, in the kernels that write the
    # packed scalars, instead of each passed through it as a buffer of its own (a kernel an
    # update). (A three-way switch, to take no predicate in, made XLA copy the snapshot every
    # update.)
    arrays = lambda tree: [x for x in jax.tree.leaves(tree) if jnp.ndim(x)]  # noqa: E731
    now, kept = (params, state.inner_state), (state.snapshot_params, state.snapshot_inner)

    def visit(now, kept):
      take = lambda a, b: jnp.where(at_start, a, b)  # noqa: E731
      return jax.tree.map(take, now, kept), at_start | all_finite(now[1])

    chosen, probe_ok = jax.lax.cond(
        at_start | rollback, visit, lambda now, kept: (kept, jnp.asarray(True)),
        (arrays(now[0]), arrays(now[1])), (arrays(kept[0]), arrays(kept[1])))
    chosen = iter(chosen[0] + chosen[1])
    snap_params, snap_inner = jax.tree.map(
        lambda x, old: next(chosen) if jnp.ndim(x) else jnp.where(at_start, x, old), now, kept)
    # The inner state's scalars (a float one: an injected hyperparameter) checked here too.
    probe_ok = probe_ok & (~rollback | all_finite([x for x in jax.tree.leaves(state.inner_state)
                                                   if not jnp.ndim(x)]))

    lr = as_float(base(state.count)) * state.multiplier * jnp.where(in_probe, multiples[c], 1.0)
    # A rollback restores the inner state one update late: the update after it starts from
    # the snapshot. Selecting before the inner optimizer reads its state keeps its new state
    # the value it writes in place (a select after it made XLA recompute that value in the
    # parameters' pass from a buffer already overwritten, so it copied it every update).
    restore = state.phase == ROLLBACK
    inner_in = jax.tree.map(lambda s, x: jnp.where(restore, s, x), snap_inner,
                            state.inner_state)
    direction, inner_state = owner.direction(updates, inner_in, params, value=value,
                                             **extra_args)
    stepped = owner.step(direction, lr)
    seen = jnp.where(finite & probe_ok, loss, jnp.inf)
    # Written elementwise, not scattered: a scatter's index vector is a kernel of its own.
    row, col = jnp.indices(state.probe_losses.shape, sparse=True)
    probe_losses = jnp.where(in_probe & (row == c) & (col == j), seen, state.probe_losses)
    # A probe must end exactly where it started: its non-finite update entries are zeroed
    # (elementwise, in the update's own pass), so the parameters stay finite.
    out_updates = jax.tree.map(
        lambda s, x, u: jnp.where(
            rollback, (s - x).astype(u.dtype),
            jnp.where(in_probe & ~jnp.isfinite(u), jnp.zeros_like(u), u)),
        snap_params, params, stepped)
    branch = jnp.where(rollback, ROLLBACK, jnp.where(in_probe, PROBE, TRAIN))

    decide = rollback & (c == n - 1)

    # The search returns the multiple it applies (1 when it does not run) and the winner (-1
    # when it does not run), so nothing outside it reads ``decide``: its predicate and the
    # conversion to a branch index fuse into one kernel.
    def search():
      scores = forecast(probe_losses, horizon)
      winner = jnp.where(jnp.any(jnp.isfinite(scores)), jnp.argmin(scores), smallest)
      return scores, winner.astype(jnp.int32), multiples[winner]

    scores, winner, multiple = jax.lax.cond(
        decide, search,
        lambda: (state.scores, jnp.int32(-1), jnp.ones([], state.multiplier.dtype)))
    new_state = WindowSearchState(
        **owner.next_fields(state, lr, finite & probe_ok), inner_state=inner_state,
        multiplier=state.multiplier * multiple,
        phase=branch.astype(jnp.int32), position=ring_next(k, w),
        snapshot_params=snap_params, snapshot_inner=snap_inner,
        probe_losses=probe_losses, scores=scores,
        winner=jnp.where(winner >= 0, winner, state.winner))
    return out_updates, new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
