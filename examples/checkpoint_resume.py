"""Save an optimizer state holding a stateful schedule with orbax, resume, and continue exactly.

  python examples/checkpoint_resume.py [--steps 120]
"""

import argparse
import tempfile

import jax
import jax.numpy as jnp
import optax
import orbax.checkpoint as ocp

import lrjax


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=120)
  args = parser.parse_args(argv)
  tx = optax.inject_hyperparams(optax.adam)(
      learning_rate=lrjax.window_decay(lrjax.warmup(1e-2, 10), window=20))
  rng = jax.random.PRNGKey(0)
  x = jax.random.normal(rng, (64, 3))
  y = x @ jnp.array([2.0, -1.0, 0.5]) + 0.1 * jax.random.normal(rng, (64,))

  @jax.jit
  def step(params, state):
    loss, grads = jax.value_and_grad(lambda w: jnp.mean((x @ w - y) ** 2))(params)
    updates, state = tx.update(grads, state, params, value=loss)
    return optax.apply_updates(params, updates), state

  def run(params, state, n):
    for _ in range(n):
      params, state = step(params, state)
    return params, state

  p0 = jnp.zeros(3)
  straight = run(p0, tx.init(p0), args.steps)
  half = run(p0, tx.init(p0), args.steps // 2 + 7)  # stop mid-window
  with tempfile.TemporaryDirectory() as tmp:
    ckpt = ocp.StandardCheckpointer()
    ckpt.save(f"{tmp}/ckpt", {"params": half[0], "opt_state": half[1]})
    ckpt.wait_until_finished()
    template = jax.tree.map(ocp.utils.to_shape_dtype_struct, {"params": p0, "opt_state": tx.init(p0)})
    restored = ckpt.restore(f"{tmp}/ckpt", template)
  resumed = run(restored["params"], restored["opt_state"], args.steps - (args.steps // 2 + 7))
  same = all(bool(jnp.array_equal(a, b)) for a, b in
             zip(jax.tree.leaves(resumed), jax.tree.leaves(straight)))
  print(f"resumed run identical to the uninterrupted one: {same}; "
        f"lr {float(lrjax.current_lr(resumed[1])):.3g}")
  if not same:
    raise SystemExit(1)


if __name__ == "__main__":
  main()
