"""The LR range test compiled into one lax.scan, against a host loop that syncs every step.

Lightning, fastai and torch-lr-finder run the sweep as a Python loop that reads
the loss on the host after every step (to smooth it and test for divergence).
This script runs the same sweep both ways on the same MLP and data, side by
side in one run, and prints the wall time of each, median of --repeats: cold
(a first call, compilation included, what one sweep in a fresh session costs)
and warm (compiled programs reused). Both are checked to give the same losses.

Usage:
  python benchmarks/lr_finder.py [--steps 100] [--width 256] [--batch 128] [--repeats 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrjax


def mlp_loss(params, batch):
  x, y = batch
  h = jnp.tanh(x @ params["w1"] + params["b1"])
  return jnp.mean((h @ params["w2"] - y) ** 2)


def host_step(lrs):
  """The usual implementation's jitted step (a fresh one compiles on first use)."""
  lr_table = jnp.asarray(lrs, jnp.float32)
  tx = optax.inject_hyperparams(optax.adam)(learning_rate=lambda c: lr_table[c])

  @jax.jit
  def step(params, opt_state, batch):
    loss, grads = jax.value_and_grad(mlp_loss)(params, batch)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return tx, step


def host_loop_sweep(params, batches, lrs, built=None, smoothing=0.98, diverge_factor=4.0):
  """The loop: one jitted step at a time, the loss read on the host after each."""
  tx, step = built if built is not None else host_step(lrs)
  opt_state = tx.init(params)

  avg, best, losses = 0.0, float("inf"), []
  for i in range(len(lrs)):
    params, opt_state, loss = step(params, opt_state, jax.tree.map(lambda b: b[i], batches))
    loss = float(loss)  # the host sync
    avg = smoothing * avg + (1 - smoothing) * loss
    smoothed = avg / (1 - smoothing ** (i + 1))
    if not np.isfinite(smoothed) or smoothed > diverge_factor * best:
      break
    best = min(best, smoothed)
    losses.append(loss)
  return np.array(losses)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=100)
  parser.add_argument("--width", type=int, default=256)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
  d = 32
  params = {"w1": jax.random.normal(k1, (d, args.width)) / np.sqrt(d),
            "b1": jnp.zeros(args.width),
            "w2": jax.random.normal(k2, (args.width,)) / np.sqrt(args.width)}
  xs = jax.random.normal(k3, (args.steps, args.batch, d))
  batches = (xs, jnp.sin(xs[..., 0]) + 0.1 * xs[..., 1])
  kw = dict(min_lr=1e-6, max_lr=10.0, num_steps=args.steps)
  lrs = 1e-6 * (1e7) ** (np.arange(args.steps) / (args.steps - 1))

  # Both agree on the losses they both saw.
  compiled = lrjax.find_lr(mlp_loss, params, batches, **kw)
  host_losses = host_loop_sweep(params, batches, lrs)
  n = min(len(host_losses), int(np.isfinite(compiled.losses).sum()))
  np.testing.assert_allclose(compiled.losses[:n], host_losses[:n], rtol=1e-4)

  def cold_scan():
    lrjax.finder._compiled.cache_clear()
    lrjax.find_lr(mlp_loss, params, batches, **kw)

  built = host_step(lrs)
  runs = {
      "host loop, cold (compile included)": lambda: host_loop_sweep(params, batches, lrs),
      "lrjax.find_lr, cold (compile included)": cold_scan,
      "host loop, warm": lambda: host_loop_sweep(params, batches, lrs, built),
      "lrjax.find_lr, warm": lambda: lrjax.find_lr(mlp_loss, params, batches, **kw),
  }
  times = {name: [] for name in runs}
  for _ in range(args.repeats):  # interleaved
    for name, run in runs.items():
      start = time.perf_counter()
      run()
      times[name].append(time.perf_counter() - start)
  med = {name: statistics.median(t) for name, t in times.items()}
  print(f"# jax {jax.__version__}, backend {jax.default_backend()}, {platform.machine()}; "
        f"MLP {d}-{args.width}-1, batch {args.batch}, {args.steps} sweep steps "
        f"(the host loop stopped after {len(host_losses)}; the scan runs all, frozen after "
        f"its stop), median of {args.repeats}")
  print("| sweep | wall time (ms) | ratio to the host loop |")
  print("|---|---:|---:|")
  for name, t in med.items():
    anchor = med["host loop, cold (compile included)" if "cold" in name else "host loop, warm"]
    print(f"| {name} | {1e3 * t:.1f} | {t / anchor:.2f} |")


if __name__ == "__main__":
  main()
