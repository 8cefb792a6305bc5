"""The learned controller: no rate to choose, or a given rate 10x too low to 10x too high.

A small MLP on a noisy teacher regression (synthetic, not from the controller's
meta-training family). AdamW under ``lrjax.learned_controller`` runs first as
a user would run it, with no rate given (its base is Prodigy's estimate), then
from three given rates a decade apart; for each the example prints where the
rate went, the spikes the guard caught and the final held-out loss, beside
AdamW at a constant rate from the same start.

  python examples/learned_controller.py [--steps 1000]
"""

import argparse

import jax
import jax.numpy as jnp
import optax

import lrjax


def make_problem():
  kx, kt1, kt2, kv = jax.random.split(jax.random.PRNGKey(0), 4)
  t1 = jax.random.normal(kt1, (10, 32)) / jnp.sqrt(10.0)
  t2 = jax.random.normal(kt2, (32,)) / jnp.sqrt(32.0)
  teacher = lambda x: jnp.sin(3 * x @ t1) @ t2  # noqa: E731

  def batch(key, n=32):
    x = jax.random.normal(key, (n, 10))
    return x, teacher(x) + 0.1 * jax.random.normal(jax.random.fold_in(key, 1), (n,))

  def init(key):
    k1, k2 = jax.random.split(key)
    return {"w1": jax.random.normal(k1, (10, 64)) / jnp.sqrt(10.0), "b1": jnp.zeros(64),
            "w2": jax.random.normal(k2, (64,)) / 8.0}

  def loss_fn(p, b):
    x, y = b
    return jnp.mean((jnp.tanh(x @ p["w1"] + p["b1"][None, :]) @ p["w2"] - y) ** 2)

  return init, loss_fn, batch, batch(kv, 2048)


def train(tx, steps):
  init, loss_fn, batch, held_out = make_problem()
  params = init(jax.random.PRNGKey(1))
  state = tx.init(params)

  @jax.jit
  def step(params, state, t):
    loss, grads = jax.value_and_grad(loss_fn)(params, batch(jax.random.PRNGKey(t + 10)))
    updates, state = tx.update(grads, state, params, value=loss)
    return optax.apply_updates(params, updates), state

  lrs = []
  for t in range(steps):
    params, state = step(params, state, t)
    lrs.append(float(lrjax.current_lr(state)) if t % 100 == 99 else None)
  return float(loss_fn(params, held_out)), [x for x in lrs if x is not None], state


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=1000)
  args = parser.parse_args()
  adamw = lambda lr: optax.adamw(lr, weight_decay=1e-4)  # noqa: E731
  print(f"{'start':>8}  {'held-out loss: learned':>23}  {'constant':>9}  spikes  "
        "rate every 100 updates (learned)")
  for start in (None, 3e-4, 3e-3, 3e-2):
    tx = lrjax.learned_controller(adamw, init_value=start, total_steps=args.steps)
    loss, lrs, state = train(tx, args.steps)
    if start is None:  # no rate given: nothing to compare a constant rate at
      label, constant = "none", "–"
    else:
      inject = optax.inject_hyperparams(optax.adamw)(learning_rate=start, weight_decay=1e-4)
      label, constant = f"{start:.0e}", f"{train(inject, args.steps)[0]:.4f}"
    print(f"{label:>8}  {loss:23.4f}  {constant:>9}  {int(state.guard.num_spikes):6d}  "
          + " ".join(f"{x:.1e}" for x in lrs))

if __name__ == "__main__":
  main()
