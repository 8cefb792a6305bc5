"""Save an optimizer state holding a stateful schedule with orbax, resume, and continue exactly.

`window_decay` halves the rate whenever a window of 20 updates shows no significant
decrease; the checkpoint is taken mid-window, and the resumed run makes the same
decisions (printed) and ends bit-identical.

  python examples/checkpoint_resume.py [--steps 200]
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
  parser.add_argument("--steps", type=int, default=200)
  args = parser.parse_args(argv)
  tx = optax.inject_hyperparams(optax.adam)(
      learning_rate=lrjax.window_decay(lrjax.warmup(1e-1, 10), window=20))
  rng = jax.random.PRNGKey(0)
  x = jax.random.normal(rng, (1024, 3))
  y = x @ jnp.array([2.0, -1.0, 0.5]) + 0.3 * jax.random.normal(jax.random.fold_in(rng, 1), (1024,))

  @jax.jit
  def step(params, state):
    batch = jax.random.randint(jax.random.fold_in(rng, state.count), (16,), 0, 1024)
    loss, grads = jax.value_and_grad(lambda w: jnp.mean((x[batch] @ w - y[batch]) ** 2))(params)
    updates, state = tx.update(grads, state, params, value=loss)
    return optax.apply_updates(params, updates), state

  def run(params, state, n, label=None):
    scale = lrjax.log_values(state)["window_decay/scale"]
    for _ in range(n):
      params, state = step(params, state)
      values = lrjax.log_values(state)
      if label and values["window_decay/scale"] != scale:
        print(f"  {label}: update {int(values['window_decay/count'])}: window_decay cut the "
              f"scale {scale:.3g} -> {values['window_decay/scale']:.3g}")
        scale = values["window_decay/scale"]
    return params, state

  p0 = jnp.zeros(3)
  print("uninterrupted run:")
  straight = run(p0, tx.init(p0), args.steps, "uninterrupted")
  print("interrupted run, saved and resumed mid-window:")
  half = run(p0, tx.init(p0), args.steps // 2 + 7, "before the save")  # stop mid-window
  with tempfile.TemporaryDirectory() as tmp:
    ckpt = ocp.StandardCheckpointer()
    ckpt.save(f"{tmp}/ckpt", {"params": half[0], "opt_state": half[1]})
    ckpt.wait_until_finished()
    template = jax.tree.map(ocp.utils.to_shape_dtype_struct, {"params": p0, "opt_state": tx.init(p0)})
    restored = ckpt.restore(f"{tmp}/ckpt", template)
  resumed = run(restored["params"], restored["opt_state"], args.steps - (args.steps // 2 + 7),
                "after the resume")
  same = all(bool(jnp.array_equal(a, b)) for a, b in
             zip(jax.tree.leaves(resumed), jax.tree.leaves(straight)))
  print(f"resumed run identical to the uninterrupted one: {same}; "
        f"lr {float(lrjax.current_lr(resumed[1])):.3g}")
  if not same:
    raise SystemExit(1)


if __name__ == "__main__":
  main()
