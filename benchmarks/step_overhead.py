"""Per-step cost of lrjax's stateful schedules against a constant learning rate.

A jitted ``lax.scan`` training loop dominated by the optimizer: Adam on 2M+
float32 parameters with a trivial quadratic loss (``--model mlp``: a small tanh network's
forward and backward pass besides, as in training). Variants, all measured in one
run, interleaved round by round so machine noise hits each alike:

- ``optax.adam(lr)`` at a constant learning rate (the anchor);
- ``optax.inject_hyperparams(optax.adam)(learning_rate=S)`` for each lrjax
  stateful schedule ``S`` (reduce_on_plateau, greedy, window_decay);
- ``optax.chain(optax.adam(lr), optax.contrib.reduce_on_plateau())`` (Optax's own);
- ``optax.chain(optax.adam(lr), lrjax.as_transform(reduce_on_plateau(1.0)))``;
- the floor: ``optax.chain(optax.adam(lr), T)``, ``T`` a transform that keeps one int32
  and one float32 scalar and scales the update by the float (no decision): the least any
  transform that keeps state and sets the rate can cost;
- ``lrjax.window_search(optax.adam, lr)``, whose probes are also reported;
- ``lrjax.learned_controller(optax.adam, init_value=lr)`` (a decision every update,
  and ``every=10``): the shipped GRU; its statistics from a fixed sample of the gradient and the parameters;
  and without a rate (its default: Prodigy's estimate as the base, the gradient scaled by it).

Prints a Markdown table of the median and the best time per step over the rounds, each
with its ratio to the anchor's median / best, and what one update compiles to on the
path every call runs, on donated buffers as the scan runs it (``lrjax.bench.hlo``:
kernels, the kernels and copies over a parameter-sized buffer, while loops, O(params)
selects, fused or not; work behind a ``lax.cond`` is paid only at a decision and not
counted there).

Usage:
  python benchmarks/step_overhead.py [--params 2097152] [--steps 200] [--rounds 21]
      [--only learned,hypergradient] [--model quadratic|mlp]
  # on a GPU: the same command; the header names the backend and the device
  # on a CPU of few cores, pinned to one: taskset -c 0 python benchmarks/step_overhead.py ...
  # (at 4k parameters a scalar-state row then moves by at most 0.04 between runs, where on
  # two cores it moved by up to 0.2)
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import optax

import lrjax
from lrjax.bench.hlo import per_step_cost, training_step

LR = 1e-3


def window_search_shape(steps: int) -> tuple[int, int]:
  """``(window, probe_steps)`` for a scan of ``steps`` updates: one window a scan, 3
  candidates probing 5% of it each (at least 3 updates a probe, the window long enough)."""
  probe = max(steps // 20, 3)
  return max(steps, 3 * probe + 1), probe


def floor_transform() -> optax.GradientTransformation:
  """The floor: a transform that keeps one int32 and one float32 scalar (a saturating count
  and a scale that moves after 5 updates) and multiplies the update by the scale."""
  def init_fn(params):
    del params
    return jnp.zeros((), jnp.int32), jnp.ones((), jnp.float32)

  def update_fn(updates, state, params=None):
    del params
    count, scale = state
    scale = jnp.where(count > 5, scale * 0.9999999, scale)
    return jax.tree.map(lambda u: u * scale, updates), (optax.safe_increment(count), scale)
  return optax.GradientTransformation(init_fn, update_fn)


def variants(window_steps: int):
  window, probe = window_search_shape(window_steps)
  inject = optax.inject_hyperparams(optax.adam)
  return {
      "optax.adam, constant lr (anchor)": optax.adam(LR),
      "lrjax.reduce_on_plateau": inject(learning_rate=lrjax.reduce_on_plateau(LR, patience=10)),
      "lrjax.reduce_on_plateau(window=50)": inject(
          learning_rate=lrjax.reduce_on_plateau(LR, patience=2, window=50)),
      "lrjax.greedy(window=50)": inject(learning_rate=lrjax.greedy(LR, window=50)),
      "lrjax.window_decay(window=100)": inject(learning_rate=lrjax.window_decay(LR, window=100)),
      "lrjax.as_transform(reduce_on_plateau)": optax.chain(
          optax.adam(LR), lrjax.as_transform(lrjax.reduce_on_plateau(1.0))),
      "optax.contrib.reduce_on_plateau": optax.chain(optax.adam(LR),
                                                     optax.contrib.reduce_on_plateau()),
      "optax.inject_hyperparams(adam), constant": inject(learning_rate=LR),
      "floor: optax.chain(adam, an int32 and a float32 scalar)": optax.chain(
          optax.adam(LR), floor_transform()),
      "lrjax.window_search": lrjax.window_search(optax.adam, LR, window=window,
                                                 probe_steps=probe),
      "lrjax.hypergradient": lrjax.hypergradient(optax.adam, init_value=LR, hyper_lr=1e-7),
      "lrjax.hypergradient(sample_size=8192)": lrjax.hypergradient(
          optax.adam, init_value=LR, hyper_lr=1e-7, sample_size=8192),
      "lrjax.learned_controller": lrjax.learned_controller(optax.adam, init_value=LR),
      "lrjax.learned_controller(no rate)": lrjax.learned_controller(optax.adam),
      "lrjax.learned_controller(every=10)": lrjax.learned_controller(optax.adam, init_value=LR,
                                                                    every=10),
  }


def _loss(params):
  return 0.5 * jnp.mean(params["w"] ** 2) + 0.5 * jnp.mean(params["b"] ** 2)


#: ``--model mlp``: a tanh MLP from MLP_WIDTH inputs to MLP_WIDTH outputs on one fixed batch.
MLP_WIDTH, MLP_BATCH = 32, 64


def model(kind: str, n_params: int):
  """``(params, loss_fn)``: ``quadratic``, a square matrix and a vector under a quadratic loss
  (the gradient is a scaled copy of the parameters: the update alone is timed); ``mlp``, a
  one-hidden-layer tanh network with about ``n_params`` parameters regressing
  ``sin(x R)`` on a fixed batch of ``MLP_BATCH`` inputs (a forward and a backward pass of
  matrix products, whose gradients are written out as a real model's are)."""
  if kind == "quadratic":
    side = int(n_params ** 0.5)
    return {"w": jnp.ones((side, side), jnp.float32), "b": jnp.ones((side,), jnp.float32)}, _loss
  d = MLP_WIDTH
  hidden = max(1, (n_params - d) // (2 * d + 1))
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  x = jax.random.normal(keys[0], (MLP_BATCH, d), jnp.float32)
  y = jnp.sin(x @ jax.random.normal(keys[1], (d, d), jnp.float32))
  params = {"w1": jax.random.normal(keys[2], (d, hidden), jnp.float32) / d ** 0.5,
            "b1": jnp.zeros((hidden,), jnp.float32),
            "w2": jax.random.normal(keys[3], (hidden, d), jnp.float32) / hidden ** 0.5,
            "b2": jnp.zeros((d,), jnp.float32)}

  def loss(p):
    h = jnp.tanh(x @ p["w1"] + p["b1"])
    return 0.5 * jnp.mean((h @ p["w2"] + p["b2"] - y) ** 2)
  return params, loss


def _step(tx, loss=_loss):
  """One training update as the timed scan runs it (the gradient depends on the loss:
  ``lrjax.bench.hlo.training_step``)."""
  return training_step(tx, loss)


def step_cost(tx, params, loss=_loss):
  """The per-call path of one update on donated buffers, as the scan runs it
  (``lrjax.bench.hlo``); a kernel over at least the largest leaf's size is O(params)."""
  return per_step_cost(_step(tx, loss), params, tx.init(params),
                       large=max(x.size for x in jax.tree.leaves(params)), donate=True)


def make_run(tx, n_params: int, steps: int, kind: str = "quadratic"):
  params, loss = model(kind, n_params)
  step = _step(tx, loss)

  def train(params, opt_state):
    def body(carry, _):
      params, opt_state, loss = step(*carry)
      return (params, opt_state), loss
    (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), None, length=steps)
    return params, opt_state, losses[-1]

  opt_state = tx.init(params)
  compiled = jax.jit(train, donate_argnums=(0, 1)).lower(params, opt_state).compile()
  return compiled, params, opt_state, loss


def _at_least(low: int):
  """An argparse type: an integer >= ``low``, else a usage error naming the bound."""
  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < low:
      raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
    return value
  return parse


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--params", type=_at_least(4), default=2_097_152)
  parser.add_argument("--steps", type=_at_least(1), default=200)
  parser.add_argument("--rounds", type=_at_least(1), default=21)
  parser.add_argument("--model", choices=("quadratic", "mlp"), default="quadratic",
                      help="quadratic: the update alone (the default); mlp: a small network's "
                      "forward and backward pass besides (see model())")
  parser.add_argument("--only", default="",
                      help="comma-separated substrings: run only the variants whose name holds "
                      "one (the anchor always runs)")
  args = parser.parse_args()
  runs, costs = {}, {}
  wanted = [w for w in args.only.split(",") if w]
  for name, tx in variants(args.steps).items():
    if wanted and "(anchor)" not in name and not any(w in name for w in wanted):
      continue
    compiled, params, opt_state, loss = make_run(tx, args.params, args.steps, args.model)
    costs[name] = step_cost(tx, params, loss)
    runs[name] = [compiled, params, opt_state]
  n = sum(x.size for x in jax.tree.leaves(next(iter(runs.values()))[1]))
  times = {name: [] for name in runs}
  for r in range(args.rounds + 1):  # round 0 warms up
    for name, run in runs.items():
      start = time.perf_counter()
      params, opt_state, loss = run[0](run[1], run[2])
      jax.block_until_ready((params, opt_state, loss))
      elapsed = time.perf_counter() - start
      run[1], run[2] = params, opt_state
      if r:
        times[name].append(elapsed / args.steps)
  anchor = statistics.median(times["optax.adam, constant lr (anchor)"])
  anchor_min = min(times["optax.adam, constant lr (anchor)"])
  device = jax.devices()[0]
  print(f"# jax {jax.__version__}, optax {optax.__version__}, lrjax {lrjax.__version__}, "
        f"backend {jax.default_backend()} ({device.device_kind}), {platform.machine()}; "
        f"{n:,} parameters ({args.model}), {args.steps} steps a scan, median of {args.rounds} "
        f"interleaved rounds")
  print("| variant | ms / step (median) | ratio (median) | ms / step (best) | ratio (best) | "
        "kernels / update | O(params) kernels | O(params) copies | while loops | "
        "O(params) selects |")
  print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
  for name, ts in times.items():
    med, best = statistics.median(ts), min(ts)
    c = costs[name]
    print(f"| {name} | {1e3 * med:.3f} | {med / anchor:.3f} | {1e3 * best:.3f} | "
          f"{best / anchor_min:.3f} | {c.kernels} | {c.large_kernels} | {c.large_copies} | "
          f"{c.whiles} | {c.large_selects} |")
  window, probe = window_search_shape(args.steps)
  print(f"\nwindow_search: window={window}, probe_steps={probe}, 3 candidates: "
        f"{3 * probe / window:.0%} of updates are probes whose progress is rolled back "
        f"(their cost is in its row).")


if __name__ == "__main__":
  main()
