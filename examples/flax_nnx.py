"""`flax.nnx.Optimizer` with a stateful lrjax schedule: `update(model, grads, value=loss)`.

  python examples/flax_nnx.py [--steps 300]
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
  parser.add_argument("--steps", type=int, default=300)
  args = parser.parse_args(argv)
  x = jax.random.normal(jax.random.PRNGKey(0), (256, 4))
  y = jnp.sin(x[:, 0]) + x[:, 1] ** 2
  model = MLP(nnx.Rngs(0))
  schedule = lrjax.reduce_on_plateau(1e-2, factor=0.5, patience=5, window=10)
  optimizer = nnx.Optimizer(model, optax.inject_hyperparams(optax.adam)(learning_rate=schedule),
                            wrt=nnx.Param)

  @nnx.jit
  def step(model, optimizer):
    loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
    optimizer.update(model, grads, value=loss)  # nnx forwards value= to the transformation
    return loss

  for t in range(args.steps):
    loss = step(model, optimizer)
    if (t + 1) % max(args.steps // 5, 1) == 0:
      print(f"step {t + 1:4d}  loss {float(loss):.4f}  lr {float(lrjax.current_lr(optimizer.opt_state)):.2e}")


if __name__ == "__main__":
  main()
