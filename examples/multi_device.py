"""Stateful schedules on 8 CPU devices: `pmap` with `axis_name`, and `jit` over a sharded batch.

Every replica decides on the loss averaged over devices, so all hold the same learning rate.
Run standalone it forces 8 host devices; each step is blocked on before the next (XLA's CPU
collectives can deadlock when steps overlap on a few cores).

  python examples/multi_device.py [--steps 200]
"""

import argparse
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P  # noqa: E402

import lrjax  # noqa: E402


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=200)
  args = parser.parse_args(argv)
  n = jax.device_count()
  if n < 2:
    print("only one device: set XLA_FLAGS=--xla_force_host_platform_device_count=8")
    return
  x = jax.random.normal(jax.random.PRNGKey(0), (n * 32, 4))
  y = x @ jnp.array([1.0, -1.0, 2.0, 0.5])
  loss_fn = lambda w, xb, yb: jnp.mean((xb @ w - yb) ** 2)  # noqa: E731

  # pmap: per-device batches, gradients and the loss averaged over the "d" axis.
  tx = optax.inject_hyperparams(optax.sgd)(
      learning_rate=lrjax.reduce_on_plateau(0.1, patience=3, axis_name="d"))
  params = jnp.zeros((n, 4))
  state = jax.pmap(tx.init)(params)

  def step(w, s, xb, yb):
    loss, g = jax.value_and_grad(loss_fn)(w, xb, yb)
    g = jax.lax.pmean(g, "d")
    u, s = tx.update(g, s, w, value=loss)
    return optax.apply_updates(w, u), s, jax.lax.pmean(loss, "d")

  pstep = jax.pmap(step, axis_name="d")
  xs, ys = x.reshape(n, 32, 4), y.reshape(n, 32)
  for _ in range(args.steps):
    params, state, loss = jax.block_until_ready(pstep(params, state, xs, ys))
  lrs = np.asarray(state.hyperparams["learning_rate"])
  print(f"pmap: loss {float(loss[0]):.5f}, lr on each of {n} replicas: {np.unique(lrs)}")

  # jit over a batch sharded along a mesh axis: the loss is global, the state replicated.
  mesh = Mesh(np.array(jax.devices()), ("batch",))
  xb = jax.device_put(x, NamedSharding(mesh, P("batch")))
  yb = jax.device_put(y, NamedSharding(mesh, P("batch")))
  tx = optax.inject_hyperparams(optax.sgd)(learning_rate=lrjax.greedy(0.05, window=10))
  w = jnp.zeros(4)
  s = tx.init(w)

  @jax.jit
  def jstep(w, s, xb, yb):
    loss, g = jax.value_and_grad(loss_fn)(w, xb, yb)
    u, s = tx.update(g, s, w, value=loss)
    return optax.apply_updates(w, u), s, loss

  for _ in range(args.steps):
    w, s, loss = jax.block_until_ready(jstep(w, s, xb, yb))
  print(f"sharded jit: loss {float(loss):.5f}, lr {float(lrjax.current_lr(s)):.3g}")


if __name__ == "__main__":
  main()
