"""Train a small least-squares model with Optax and an lrjax schedule, then sweep peak LRs.

Shows the three habits lrjax is built for: a schedule dropped into an Optax optimizer, a schedule
passed to a jitted train step as an argument (new values, no recompilation), and a vmap over a
stack of schedules that trains 8 peak learning rates in one compiled program.

  python examples/schedule_sweep.py [--steps 300]
"""

import argparse

import jax
import jax.numpy as jnp
import optax

import lrjax


def make_data(key, n=256, d=16):
  k1, k2, k3 = jax.random.split(key, 3)
  x = jax.random.normal(k1, (n, d))
  w_true = jax.random.normal(k2, (d,))
  y = x @ w_true + 0.1 * jax.random.normal(k3, (n,))
  return x, y


def loss_fn(w, x, y):
  return jnp.mean((x @ w - y) ** 2)


def train(schedule, x, y, steps):
  """The whole run is one lax.scan; the schedule is an ordinary argument."""
  tx = optax.inject_hyperparams(optax.adam)(learning_rate=schedule)
  w = jnp.zeros(x.shape[1])
  state = tx.init(w)

  def step(carry, _):
    w, state = carry
    loss, grads = jax.value_and_grad(loss_fn)(w, x, y)
    updates, state = tx.update(grads, state, w)
    return (optax.apply_updates(w, updates), state), (loss, state.hyperparams["learning_rate"])

  (w, _), (losses, lrs) = jax.lax.scan(step, (w, state), None, length=steps)
  return loss_fn(w, x, y), losses, lrs


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=300)
  args = parser.parse_args(argv)
  steps = args.steps
  x, y = make_data(jax.random.PRNGKey(0))
  run = jax.jit(train, static_argnums=3)

  schedules = {
      "constant": lrjax.constant(0.05),
      "cosine": lrjax.warmup_cosine_decay(0.0, 0.05, steps // 10, steps),
      "wsd": lrjax.wsd(0.05, steps // 10, steps * 7 // 10, steps // 5),
      "one_cycle": lrjax.one_cycle(0.05, steps),
  }
  for name, schedule in schedules.items():
    final, losses, lrs = run(schedule, x, y, steps)
    print(f"{name:>10}: final loss {float(final):.5f}  (lr at end {float(lrs[-1]):.2e})")

  peaks = jnp.logspace(-3, -0.5, 8)
  stack = jax.vmap(lambda p: lrjax.wsd(p, steps // 10, steps * 7 // 10, steps // 5))(peaks)
  finals, _, _ = jax.jit(jax.vmap(train, in_axes=(0, None, None, None)),
                         static_argnums=3)(stack, x, y, steps)
  best = int(jnp.argmin(finals))
  print("wsd peak sweep (one compiled program):")
  for p, f in zip(peaks, finals):
    print(f"  peak {float(p):.4f}: final loss {float(f):.5f}{'  <- best' if p == peaks[best] else ''}")


if __name__ == "__main__":
  main()
