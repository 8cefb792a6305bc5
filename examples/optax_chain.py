"""lrjax inside Optax chains: a pure schedule, a stateful one, and one as a chained transform.

  python examples/optax_chain.py [--steps 300]
"""

import argparse

import jax
import jax.numpy as jnp
import optax

import lrjax


def train(tx, steps):
  key = jax.random.PRNGKey(0)
  x = jax.random.normal(key, (128, 8))
  y = x @ jnp.arange(1.0, 9.0)
  loss_fn = lambda w: jnp.mean((x @ w - y) ** 2)  # noqa: E731
  params = jnp.zeros(8)
  state = tx.init(params)

  @jax.jit
  def step(params, state):
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, state = tx.update(grads, state, params, value=loss)
    return optax.apply_updates(params, updates), state, loss

  for _ in range(steps):
    params, state, loss = step(params, state)
  return float(loss), float(lrjax.current_lr(state))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=300)
  args = parser.parse_args(argv)
  n = args.steps
  chains = {
      "clip + adamw(wsd)": optax.chain(
          optax.clip_by_global_norm(1.0),
          optax.inject_hyperparams(optax.adamw)(learning_rate=lrjax.wsd(0.1, n // 10, n // 2,
                                                                        n - n // 10 - n // 2))),
      "adam(reduce_on_plateau) in MultiSteps": optax.MultiSteps(
          optax.inject_hyperparams(optax.adam)(learning_rate=lrjax.reduce_on_plateau(
              0.1, patience=5)), every_k_schedule=2),
      # inject_hyperparams keeps adam's 0.1 in the state, so current_lr reports the
      # effective rate 0.1 x greedy's multiplier (a plain optax.adam(0.1) would need
      # current_lr(state, schedule=0.1)).
      "adam(0.1) then as_transform(greedy)": optax.chain(
          optax.inject_hyperparams(optax.adam)(0.1),
          lrjax.as_transform(lrjax.greedy(1.0, window=10, max_value=4.0))),
  }
  for name, tx in chains.items():
    loss, lr = train(tx, n)
    print(f"{name:>40}: final loss {loss:.5f}, current lr {lr:.3g}")


if __name__ == "__main__":
  main()
