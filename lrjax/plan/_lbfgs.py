"""One L-BFGS loop for the plan package: the law's fit and the schedule planner."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax


def minimise(fun: Callable[[jax.Array], jax.Array], z0: jax.Array, max_iters: Any, tol: Any,
             atol: float) -> tuple[jax.Array, jax.Array]:
  """``optax.lbfgs`` (zoom line search) on ``fun`` from ``z0`` inside one ``while_loop``.

  Stops after ``max_iters`` iterations, or once an iteration (after the first two) improves
  ``fun`` by no more than ``tol * |fun| + atol``. Returns the last iterate and the iterations run.
  """
  opt = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(fun)

  def cond(carry):
    _, _, it, before, after = carry
    return (it < max_iters) & ((it < 2) | (before - after > tol * jnp.abs(after) + atol))

  def body(carry):
    z, state, it, _, after = carry
    value, grad = value_and_grad(z, state=state)
    updates, state = opt.update(grad, state, z, value=value, grad=grad, value_fn=fun)
    z = optax.apply_updates(z, updates)
    return z, state, it + 1, after, optax.tree_utils.tree_get(state, "value")

  inf = jnp.asarray(jnp.inf, z0.dtype)
  z, _, it, _, _ = jax.lax.while_loop(cond, body, (z0, opt.init(z0), jnp.asarray(0), inf, inf))
  return z, it
