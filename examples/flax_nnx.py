"""`flax.nnx.Optimizer` with a stateful lrjax schedule: `update(model, grads, value=loss)`.

Minibatches of noisy targets: the training loss flattens at the noise floor, and
`reduce_on_plateau` halves the rate each time it does; every decision is printed.

  python examples/flax_nnx.py [--steps 400]
"""

import argparse

import jax
import jax.numpy as jnp
import optax
from flax import nnx

import lrjax


class MLP(nnx.Module):
  def __init__(self, rngs):
    self.l1 = nnx.Linear(4, 32, rngs=rngs)
    self.l2 = nnx.Linear(32, 1, rngs=rngs)

  def __call__(self, x):
    return self.l2(jax.nn.relu(self.l1(x)))[..., 0]


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=400)
  args = parser.parse_args(argv)
  kx, knoise = jax.random.split(jax.random.PRNGKey(0))
  x = jax.random.normal(kx, (4096, 4))
  y = jnp.sin(x[:, 0]) + x[:, 1] ** 2 + 0.3 * jax.random.normal(knoise, (4096,))
  model = MLP(nnx.Rngs(0))
  schedule = lrjax.reduce_on_plateau(1e-2, factor=0.5, patience=5, window=10)
  optimizer = nnx.Optimizer(model, optax.inject_hyperparams(optax.adam)(learning_rate=schedule),
                            wrt=nnx.Param)

  @nnx.jit
  def step(model, optimizer, t):
    idx = jax.random.randint(jax.random.fold_in(jax.random.PRNGKey(1), t), (32,), 0, 4096)
    xb, yb = x[idx], y[idx]
    loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(xb) - yb) ** 2))(model)
    optimizer.update(model, grads, value=loss)  # nnx forwards value= to the transformation
    return loss

  lr = float(lrjax.current_lr(optimizer.opt_state))
  decisions = 0
  for t in range(args.steps):
    loss = step(model, optimizer, t)
    new_lr = lrjax.log_values(optimizer.opt_state)["lr"]
    if new_lr != lr:
      decisions += 1
      print(f"step {t + 1:4d}  loss {float(loss):.4f}  reduce_on_plateau: lr {lr:.2e} -> "
            f"{new_lr:.2e}")
      lr = new_lr
    elif (t + 1) % max(args.steps // 5, 1) == 0:
      print(f"step {t + 1:4d}  loss {float(loss):.4f}  lr {lr:.2e}")
  print(f"{decisions} decision(s) in {args.steps} steps; final lr {lr:.2e}")


if __name__ == "__main__":
  main()
