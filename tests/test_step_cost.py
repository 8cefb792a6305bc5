"""What one update compiles to: no while loop and no O(params) select on the per-step path.

Read from XLA's optimized HLO (``lrjax.bench.hlo``): the path every call runs, with the
branches of a ``lax.cond`` (work paid only at a decision) left out.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
import pytest

import lrjax
from lrjax import _packed
from lrjax.bench.hlo import per_step_cost, training_step
from lrjax.stateful._window import slope_p_value
from multiprocess_worker import cases as every_stateful_object

PARAMS = {"w": jnp.ones((64, 64)), "b": jnp.ones(64)}


def _cost(tx):
  """One update, the loss returned as a training step returns it (so an optimizer that does
  not read it pays for it too)."""
  def step(params, state):
    loss, grads = jax.value_and_grad(lambda p: 0.5 * jnp.sum(p["w"] ** 2) + jnp.sum(p["b"]))(
        params)
    updates, state = tx.update(grads, state, params, value=loss)
    return optax.apply_updates(params, updates), state, loss
  return per_step_cost(step, PARAMS, tx.init(PARAMS), large=64 * 64)


OBJECTS = every_stateful_object()  # the one list, plus weight decay and the averaging transforms


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_no_loop_and_no_params_sized_select_outside_decisions(name):
  cost = _cost(OBJECTS[name](None))
  assert cost.whiles == 0, cost
  if name != "window_search":  # its selects ride on the optimizer's own passes: see below
    assert cost.large_selects == 0, cost


def _passes(tx, n=256):
  """The O(params) kernels and copies of ``_donated_cost``."""
  cost = _donated_cost(tx, n)
  return cost.large_kernels, cost.large_copies


def _donated_cost(tx, n=256):
  """A training step on donated buffers (as a scan or a donating jit runs it), the gradient
  depending on the loss as in a network; a buffer of n * n elements counts as O(params)."""
  params = {"w": jnp.ones((n, n)), "b": jnp.ones(n)}
  step = training_step(tx, lambda p: 0.5 * jnp.sum(p["w"] ** 2) + 0.5 * jnp.sum(p["b"] ** 2))
  return per_step_cost(step, params, tx.init(params), large=n * n, donate=True)


@pytest.mark.parametrize("inner", ["adam", "adamw", "sgd", "sgd_momentum", "lion"])
def test_window_search_makes_the_passes_of_its_optimizer_and_no_more(inner):
  """Snapshot, probe guard and rollback add no pass over the parameters and no copy of them to
  an update: the restore and the guard are selects fused into the passes the optimizer and
  the caller's update make anyway, the snapshot is taken behind a conditional. (The version
  with the restore behind a conditional made one more pass and XLA copied the inner state
  on every update: 3.5x per update at 2 M parameters.)"""
  make = {"adam": optax.adam, "adamw": optax.adamw, "sgd": optax.sgd, "lion": optax.lion,
          "sgd_momentum": lambda lr: optax.sgd(lr, momentum=0.9)}[inner]
  bare = _passes(make(0.1))
  assert _passes(lrjax.window_search(make, 0.1, window=20, probe_steps=3)) == bare, bare


@pytest.mark.parametrize("inner", ["sgd", "adam", "inject_hyperparams(adam)"])
def test_window_search_adds_few_scalar_kernels(inner):
  """Its place in the window is carried (no integer quotient or remainder: each was a kernel of
  its own), the probe's loss is written by a select (a scatter's index vector was a kernel),
  and the snapshot's conditional takes the parameter-sized leaves only (each scalar passed
  through it was a kernel): 8 kernels beyond SGD's update, 7 beyond Adam's, 6 beyond an
  injected Adam's (15, 16 and 27 before)."""
  make = {"sgd": optax.sgd, "adam": optax.adam,
          "inject_hyperparams(adam)": optax.inject_hyperparams(optax.adam)}[inner]
  bare = _donated_cost(make(0.1)).kernels
  cost = _donated_cost(lrjax.window_search(make, 0.1, window=20, probe_steps=3))
  assert cost.kernels - bare <= 8 and cost.large_copies == 0, (cost, bare)


def test_hypergradient_keeps_its_previous_direction_without_a_copy():
  """With Adam, u_{t-1} is read by g.u and then replaced by u_t in place: no copy per update
  (behind a lax.cond, or written before g.u had read it, XLA copied it on every update), and
  no pass over the parameters beyond the optimizer's and g.u's: the finite check is g.u's own
  (one pass more, 4 more kernels in all, when it was a reduction of its own). (With AdamW
  and Lion one copy is left, 2 and 3 before: XLA recomputes their direction from the
  parameters in the new direction's pass, README's rule 2 in benchmarks/; not mended.)"""
  bare_kernels, _ = _passes(optax.adam(0.1))
  kernels, copies = _passes(lrjax.hypergradient(optax.adam, init_value=0.1, hyper_lr=1e-7))
  assert copies == 0 and kernels <= bare_kernels + 3, (kernels, copies, bare_kernels)
  # With sample_size the direction, read by the sample and the update, is the one pass more.
  kernels, copies = _passes(lrjax.hypergradient(optax.adam, init_value=0.1, hyper_lr=1e-7,
                                                sample_size=1024))
  assert copies == 0 and kernels <= bare_kernels + 1, (kernels, copies, bare_kernels)
  for inner, bound in ((optax.sgd, 7), (optax.adam, 8)):  # 10 and 11 before
    bare = _cost(optax.with_extra_args_support(inner(0.1))).kernels
    cost = _cost(lrjax.hypergradient(inner, init_value=0.1, hyper_lr=1e-7)).kernels
    assert cost - bare <= bound, (inner, cost, bare)


def test_the_learned_controller_packs_its_scalars():
  """Its scalars are stored in one float32 and one int32 vector (lrjax._packed): at 4k
  parameters 21 kernels beyond Adam's with a rate, 25 estimating it, 24 deciding every 10
  updates (33, 40 and 22, with 4 copies each, before the sixth stop of 2026-12-07: its inner
  products in one pass, ``lrjax._sampling.dots``; each divide and square root read once; its
  13 inputs joined as two stacks of at most 7, which XLA fuses with their producers; 52 and 59
  unpacked; the bounds leave one for XLA's fusion choices). Below ``SAMPLE_SIZE`` its samples
  are the whole model: they are written over the previous ones, not copied (XLA copied the
  gradient's and the parameters' in and out of the donated state, 4 copies an update, while
  the samples were stored as read)."""
  bare = _donated_cost(optax.with_extra_args_support(optax.adam(0.1)), 64).kernels
  for tx, bound in ((lrjax.learned_controller(optax.adam, init_value=0.1), 22),
                    (lrjax.learned_controller(optax.adam), 26),
                    (lrjax.learned_controller(optax.adam, init_value=0.1, every=10), 25)):
    c = _donated_cost(tx, 64)
    assert c.large_copies == 0 and c.kernels - bare <= bound, (c, bare)


def test_window_decay_runs_no_loop_and_no_conditional():
  """Its t-test is a comparison with the critical value found by ``init`` (betainc's loop
  runs there, once); the window is carried as sums. It had a conditional around betainc, and
  its predicate and the written window were a kernel each."""
  cost = _cost(optax.inject_hyperparams(optax.sgd)(learning_rate=lrjax.window_decay(
      0.1, window=10)))
  assert cost.whiles == 0 and cost.conditionals == 0, cost
  init = per_step_cost(lambda: lrjax.window_decay(0.1, window=10).init())
  assert init.whiles >= 1, init  # the quantile's bisection (the counter has teeth)


def test_the_counter_sees_a_loop_and_a_select_when_they_are_there():
  """The reading has teeth: betainc's loop and a params-sized where on the per-call path."""
  def step(params, buffer):
    p = slope_p_value(buffer)
    params = jax.tree.map(lambda x: jnp.where(p > 0.5, x, 2 * x), params)
    return params, buffer
  cost = per_step_cost(step, PARAMS, jnp.linspace(1.0, 0.0, 10), large=64 * 64)
  assert cost.whiles >= 1 and cost.large_selects >= 1, cost


# Kernels one update adds to its optimizer's (recorded in benchmarks/README.md): a stateful
# schedule stores its scalars in one float32 and one int32 vector (lrjax._packed), so a
# scalar-state one adds at most 4 (issue 21's bound; 15 before packing; reduce_on_plateau 3
# since its comparison reads the window's sum, not the divided mean); greedy and
# window_decay carry their windows: greedy a window of losses (written, not selected on a
# skip or a restart: `stateful._core.select_scalars`) and its sum (4: 6 when it summed the
# window, a reduction in two kernels and a divide read by both vectors), window_decay only
# its regression's sums (3: 6 with a stored window, its write, and betainc in a conditional
# with a predicate of its own; greedy 7 and window_decay 10 before).
KERNEL_BOUNDS = {"reduce_on_plateau": (lambda: lrjax.reduce_on_plateau(0.1), 3),
                 "reduce_on_plateau(window=50)":
                     (lambda: lrjax.reduce_on_plateau(0.1, window=50), 3),
                 "greedy": (lambda: lrjax.greedy(0.1), 4),
                 "window_decay": (lambda: lrjax.window_decay(0.1), 3)}


@pytest.mark.parametrize("inner", [optax.sgd, optax.adam], ids=["sgd", "adam"])
def test_a_stateful_schedule_adds_few_kernels_to_its_optimizer(inner):
  anchor = _cost(optax.inject_hyperparams(inner)(learning_rate=0.1)).kernels
  for name, (make, bound) in KERNEL_BOUNDS.items():
    cost = _cost(optax.inject_hyperparams(inner)(learning_rate=make()))
    assert cost.kernels - anchor <= bound, (name, cost.kernels, anchor)
  bare = _cost(optax.with_extra_args_support(inner(0.1))).kernels
  cost = _cost(optax.chain(inner(0.1), lrjax.as_transform(lrjax.reduce_on_plateau(1.0))))
  assert cost.kernels - bare <= 2, (cost.kernels, bare)  # 3 before the sum comparison


class _Scalars(NamedTuple):
  a: jax.Array
  b: jax.Array
  c: jax.Array
  d: jax.Array
  e: jax.Array
  f: jax.Array
  g: jax.Array
  h: jax.Array


@_packed.register
class _PackedScalars(_packed.PackedState):
  _logical = _Scalars
  __slots__ = ()


def _scalar_rule(packed):
  """A transform whose state is 8 scalars (4 float32, 4 int32), each moved by the loss."""
  def init(params):
    del params
    zeros = [jnp.float32(0)] * 4 + [jnp.int32(0)] * 4
    return _PackedScalars(*zeros) if packed else _Scalars(*zeros)

  def update(updates, state, params=None, *, value, **extra):
    del params, extra
    s = state.view() if packed else state
    floats = [s.a + value, jnp.maximum(s.b, value), s.c * 0.9 + value / (s.h + 1), s.d - value]
    ints = [s.e + 1, jnp.where(value > s.a, s.f + 1, 0), s.g + (value > 1), s.h + 2]
    new = _Scalars(*floats, *ints)
    return updates, _PackedScalars(*new) if packed else new
  return optax.chain(optax.sgd(0.1), optax.GradientTransformationExtraArgs(init, update))


def test_packing_the_scalars_is_what_saves_the_kernels():
  """The counter has teeth: 8 scalar leaves cost a kernel each; packed, they cost 2 (one per
  vector), the divide among them fused in."""
  bare = _cost(optax.with_extra_args_support(optax.sgd(0.1))).kernels
  separate = _cost(_scalar_rule(False)).kernels - bare
  packed = _cost(_scalar_rule(True)).kernels - bare
  assert separate >= 8 and packed <= 2, (separate, packed)


def _big_cost(tx):
  """One update on 65,536 + 256 parameters (more than the controller's sample), the loss
  returned as a training step returns it; a reduce over >= 65,536 elements is O(params)."""
  params = {"w": jnp.ones((256, 256)), "b": jnp.ones(256)}

  def step(params, state):
    loss, grads = jax.value_and_grad(lambda p: 0.5 * jnp.sum(p["w"] ** 2) + jnp.sum(p["b"]))(
        params)
    updates, state = tx.update(grads, state, params, value=loss)
    return optax.apply_updates(params, updates), state, loss
  return per_step_cost(step, params, tx.init(params), large=256 * 256)


def test_the_learned_controller_makes_no_pass_over_the_model():
  """Its statistics come from a sample of ~8k coordinates: the only O(params) reduction of an
  update is the loss's own, as for the bare optimizer; hypergradient's g.u shows as one more
  (the counter has teeth)."""
  anchor = _big_cost(optax.with_extra_args_support(optax.sgd(0.1))).large_reductions
  assert anchor == 1  # the loss
  for every in (1, 10):
    cost = _big_cost(lrjax.learned_controller(optax.sgd, init_value=0.1, every=every))
    assert cost.large_reductions == anchor and cost.large_selects == 0, (every, cost)
  # Without init_value, Prodigy's estimate of the base reads the same sample (plus two of its
  # own: the start and the weighted gradient sum), never the model.
  cost = _big_cost(lrjax.learned_controller(optax.sgd))
  assert cost.large_reductions == anchor and cost.large_selects == 0, cost
  hyper = _big_cost(lrjax.hypergradient(optax.sgd, init_value=0.1, hyper_lr=1e-3))
  assert hyper.large_reductions == anchor + 1, hyper
  # hypergradient(sample_size=) reads g.u from the same kind of sample: no reduction of its own.
  sampled = _big_cost(lrjax.hypergradient(optax.sgd, init_value=0.1, hyper_lr=1e-3,
                                          sample_size=8192))
  assert sampled.large_reductions == anchor and sampled.large_selects == 0, sampled
