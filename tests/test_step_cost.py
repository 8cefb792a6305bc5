"""What one update compiles to: no while loop and no O(params) select on the per-step path.

Read from XLA's optimized HLO (``lrjax.bench.hlo``): the path every call runs, with the
branches of a ``lax.cond`` (work paid only at a decision) left out.
"""

import jax
import jax.numpy as jnp
import optax
import pytest

import lrjax
from lrjax.bench.hlo import per_step_cost
from lrjax.stateful._window import slope_p_value
from multiprocess_worker import cases as every_stateful_object

PARAMS = {"w": jnp.ones((64, 64)), "b": jnp.ones(64)}


def _cost(tx):
  def step(params, state):
    loss, grads = jax.value_and_grad(lambda p: 0.5 * jnp.sum(p["w"] ** 2) + jnp.sum(p["b"]))(
        params)
    updates, state = tx.update(grads, state, params, value=loss)
    return optax.apply_updates(params, updates), state
  return per_step_cost(step, PARAMS, tx.init(PARAMS), large=64 * 64)


OBJECTS = every_stateful_object()  # the one list, plus weight decay and the averaging transforms


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_no_loop_and_no_params_sized_select_outside_decisions(name):
  cost = _cost(OBJECTS[name](None))
  assert cost.whiles == 0, cost
  assert cost.large_selects == 0, cost


def test_window_decay_pays_its_t_test_only_at_decisions():
  cost = _cost(optax.inject_hyperparams(optax.sgd)(learning_rate=lrjax.window_decay(
      0.1, window=10)))
  assert cost.conditionals == 1 and cost.decision_instructions > 100, cost


def test_the_counter_sees_a_loop_and_a_select_when_they_are_there():
  """The reading has teeth: betainc's loop and a params-sized where on the per-call path."""
  def step(params, buffer):
    p = slope_p_value(buffer)
    params = jax.tree.map(lambda x: jnp.where(p > 0.5, x, 2 * x), params)
    return params, buffer
  cost = per_step_cost(step, PARAMS, jnp.linspace(1.0, 0.0, 10), large=64 * 64)
  assert cost.whiles >= 1 and cost.large_selects >= 1, cost


def test_a_scalar_schedule_adds_few_kernels_to_its_optimizer():
  """Counts recorded in benchmarks/README.md; here a bound that catches a regression."""
  anchor = _cost(optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)).kernels
  for make in (lambda: lrjax.reduce_on_plateau(0.1), lambda: lrjax.greedy(0.1),
               lambda: lrjax.window_decay(0.1)):
    cost = _cost(optax.inject_hyperparams(optax.sgd)(learning_rate=make()))
    # 13-18 measured without the spike guard, 17-22 with it (guard=True, the default).
    assert cost.kernels - anchor <= 24, (make(), cost.kernels, anchor)
