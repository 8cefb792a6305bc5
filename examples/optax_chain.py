"""lrjax inside Optax chains: a pure schedule, a stateful one, and one as a chained transform.

Minibatches of a noisy linear regression: the loss flattens at the noise floor, so
the adaptive schedules act, and each of their decisions is printed.

  python examples/optax_chain.py [--steps 600]
"""

import argparse

import jax
import jax.numpy as jnp
import optax

import lrjax


def train(tx, steps, adaptive):
  kx, knoise = jax.random.split(jax.random.PRNGKey(0))
  x = jax.random.normal(kx, (2048, 8))
  y = x @ jnp.arange(1.0, 9.0) + 0.5 * jax.random.normal(knoise, (2048,))
  params = jnp.zeros(8)
  state = tx.init(params)

  @jax.jit
  def step(params, state, t):
    idx = jax.random.randint(jax.random.fold_in(jax.random.PRNGKey(1), t), (32,), 0, 2048)
    loss, grads = jax.value_and_grad(lambda w: jnp.mean((x[idx] @ w - y[idx]) ** 2))(params)
    updates, state = tx.update(grads, state, params, value=loss)
    return optax.apply_updates(params, updates), state, loss

  lrs = [float(lrjax.current_lr(state))]
  for t in range(steps):
    params, state, loss = step(params, state, t)
    lrs.append(float(lrjax.current_lr(state)))
  if adaptive:
    print_decisions(lrs)
  return float(jnp.mean((x @ params - y) ** 2)), lrs[-1]


def print_decisions(lrs):
  """One line per run of consecutive moves of the rate in one direction."""
  run = None  # (first step, direction, rate before)
  for t in range(1, len(lrs) + 1):
    move = 0 if t == len(lrs) else (lrs[t] > lrs[t - 1]) - (lrs[t] < lrs[t - 1])
    if run and move != run[1]:
      first, direction, before = run
      span = f"step {first}" if first == t - 1 else f"steps {first}-{t - 1}"
      print(f"    {span}: {'raised' if direction > 0 else 'cut'} lr {before:.3g} -> "
            f"{lrs[t - 1]:.3g}")
      run = None
    if move and run is None:
      run = (t, move, lrs[t - 1])


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=600)
  args = parser.parse_args(argv)
  n = args.steps
  chains = {
      "clip + adamw(wsd)": (False, optax.chain(
          optax.clip_by_global_norm(1.0),
          optax.inject_hyperparams(optax.adamw)(learning_rate=lrjax.wsd(0.1, n // 10, n // 2,
                                                                        n - n // 10 - n // 2)))),
      # MultiSteps accumulates 2 minibatches per update: the schedule decides per update.
      # A window mean less than 5% below the best counts as no improvement.
      "adam(reduce_on_plateau) in MultiSteps": (True, optax.MultiSteps(
          optax.inject_hyperparams(optax.adam)(learning_rate=lrjax.reduce_on_plateau(
              0.1, factor=0.5, patience=1, window=10, threshold=0.05)), every_k_schedule=2)),
      # inject_hyperparams keeps adam's 0.1 in the state, so current_lr reports the
      # effective rate 0.1 x greedy's multiplier (a plain optax.adam(0.1) would need
      # current_lr(state, schedule=0.1)).
      "adam(0.1) then as_transform(greedy)": (True, optax.chain(
          optax.inject_hyperparams(optax.adam)(0.1),
          lrjax.as_transform(lrjax.greedy(1.0, window=10, patience=10, max_value=4.0)))),
  }
  for name, (adaptive, tx) in chains.items():
    print(f"{name}:" + (" (its decisions)" if adaptive else ""))
    loss, lr = train(tx, n, adaptive)
    print(f"  final full-data loss {loss:.4f} (noise floor 0.25), final lr {lr:.3g}")


if __name__ == "__main__":
  main()
