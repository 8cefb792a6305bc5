"""Compile and evaluation time of many-piece schedules: lrjax against Optax.

For piecewise-constant and joined schedules at 10, 100, 1,000 and 10,000
pieces, builds the same schedule with Optax and with lrjax, and measures, side
by side in one run:

- compile: wall time of ``jax.jit(f).lower(t).compile()`` for a scalar step
  (tracing + XLA compilation), the cost paid once per training program;
- eval: median wall time of one compiled call on a vector of 10,000 steps;
- ops: the number of operations in the lowered program (StableHLO lines).

Compile times are the best of 3 (of 1 when a compile takes over a second).
Each measurement runs in a fresh subprocess with a time limit (--limit, 300 s
by default): Optax's 10,000-piece join does not finish compiling in that time
on a 2-core CPU, and the table says so rather than leaving the row out.

Usage:
  python benchmarks/schedule_scaling.py [--pieces 10,100,1000,10000] [--repeats 5] [--limit 300]
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrjax


def piecewise(n: int):
  scales = {10 * k: 0.99 for k in range(1, n)}
  values = [0.99 ** k for k in range(n)]
  return (optax.piecewise_constant_schedule(1.0, scales),
          lrjax.piecewise_constant([10 * k for k in range(1, n)], values))


def joined(n: int):
  bounds = [10 * k for k in range(1, n)]
  theirs = optax.join_schedules(
      [optax.cosine_decay_schedule(1.0 / (k + 1), 10) for k in range(n)], bounds)
  ours = lrjax.join([lrjax.cosine_decay(1.0 / (k + 1), 10) for k in range(n)], bounds)
  return theirs, ours


BUILDERS = {"piecewise_constant": piecewise, "join": joined}
STEPS = np.arange(10_000, dtype=np.int32) * 11


def measure(schedule, repeats: int) -> dict:
  compiles = []
  while len(compiles) < 3 and (not compiles or compiles[-1] < 1.0):
    fn = lambda t: schedule(t)  # a fresh function: nothing cached from a previous run
    start = time.perf_counter()
    lowered = jax.jit(fn).lower(jnp.int32(5))
    lowered.compile()
    compiles.append(time.perf_counter() - start)
  ops = sum(1 for line in lowered.as_text().splitlines() if " = " in line)
  vec = jax.jit(fn)
  steps = jnp.asarray(STEPS)
  vec(steps).block_until_ready()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    vec(steps).block_until_ready()
    times.append(time.perf_counter() - start)
  return {"compile_s": min(compiles), "eval_ms": 1e3 * statistics.median(times), "ops": ops,
          "values": np.asarray(vec(steps))}


def _child(name: str, n: int, which: int, repeats: int, queue) -> None:
  queue.put(measure(BUILDERS[name](n)[which], repeats))


def measure_in_subprocess(name: str, n: int, which: int, repeats: int, limit: float):
  """Runs ``measure`` in a fresh process; ``None`` if it passes ``limit`` seconds."""
  ctx = multiprocessing.get_context("spawn")
  queue = ctx.Queue()
  proc = ctx.Process(target=_child, args=(name, n, which, repeats, queue))
  proc.start()
  try:
    result = queue.get(timeout=limit)
  except Exception:  # queue.Empty: the limit passed
    result = None
  proc.join(5)
  if proc.is_alive():
    proc.kill()
    proc.join()
  return result


def _fmt(result, key, fmt):
  return "—" if result is None else format(result[key], fmt)


def _ratio(o, l, key, limit):
  if o is None:
    return f"> {limit / l[key]:.0f}x" if key == "compile_s" else "—"
  return f"{o[key] / l[key]:.1f}x"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--pieces", default="10,100,1000,10000")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--limit", type=float, default=300.0,
                      help="seconds allowed for one measurement (default 300)")
  args = parser.parse_args()
  pieces = [int(p) for p in args.pieces.split(",")]
  print(f"# jax {jax.__version__}, optax {optax.__version__}, lrjax {lrjax.__version__}, "
        f"backend {jax.default_backend()}, {platform.processor() or platform.machine()}, "
        f"{multiprocessing.cpu_count()} cores")
  print("| schedule | pieces | Optax compile (s) | lrjax compile (s) | compile ratio "
        "| Optax eval (ms) | lrjax eval (ms) | eval ratio | Optax ops | lrjax ops |")
  print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
  for name in BUILDERS:
    for n in pieces:
      l = measure_in_subprocess(name, n, 1, args.repeats, args.limit)
      o = measure_in_subprocess(name, n, 0, args.repeats, args.limit)
      if o is not None:  # both compute the same schedule
        np.testing.assert_allclose(o["values"], l["values"], rtol=1e-4, atol=1e-7)
      o_compile = f"> {args.limit:.0f} (stopped)" if o is None else f"{o['compile_s']:.3f}"
      print(f"| {name} | {n:,} | {o_compile} | {l['compile_s']:.3f} | "
            f"{_ratio(o, l, 'compile_s', args.limit)} | {_fmt(o, 'eval_ms', '.2f')} | "
            f"{l['eval_ms']:.2f} | {_ratio(o, l, 'eval_ms', args.limit)} | "
            f"{_fmt(o, 'ops', ',')} | {l['ops']:,} |", flush=True)


if __name__ == "__main__":
  main()
