"""What each stateful method adds per update, read from the compiled program: a reading for scale.

For every stateful schedule and transform, one data-parallel update under ``shard_map`` over
8 devices with ``axis_name`` (the gradients averaged by the user, the loss by the method), on
a model of ``--params`` parameters: the kernels, while loops and O(params) selects on the
path every update runs, the cross-device collectives (count and bytes per device) on that
path, the work behind ``lax.cond`` paid only at a decision, and the bytes of state beside the
parameters (scalar, or O(params) copies). Counts come from XLA's optimized HLO on the CPU
(``lrjax.bench.hlo``); a GPU or TPU compiler fuses differently, so read kernels as indicative,
collectives and state bytes as exact.

Usage:
  python benchmarks/scale_reading.py [--params 1048576]
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import Mesh, PartitionSpec as P  # noqa: E402

from lrjax.bench.hlo import per_step_cost  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from multiprocess_worker import cases  # noqa: E402  (the one list, plus decay and averaging)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--params", type=int, default=1 << 20)
  args = parser.parse_args()
  mesh = Mesh(np.array(jax.devices()[:8]), ("batch",))
  params = {"w": jnp.zeros(args.params)}
  param_bytes = args.params * 4
  rows = {"optax.sgd (anchor)": lambda ax: optax.sgd(0.1), **cases()}
  print(f"# jax {jax.__version__}, backend {jax.default_backend()}; {args.params:,} float32 "
        f"parameters ({param_bytes / 2**20:.1f} MiB), shard_map over 8 devices")
  print("| method | kernels / update | while loops | O(params) selects | collectives / update "
        "(bytes) | decision work (instructions) | state: scalar bytes | state: O(params) "
        "copies |")
  print("|---|---:|---:|---:|---:|---:|---:|---:|")
  for name, build in rows.items():
    tx = build("batch")

    def local(params, state, x):
      loss, grads = jax.value_and_grad(lambda p: jnp.mean((x * p["w"][:8]) ** 2))(params)
      grads = jax.lax.pmean(grads, "batch")
      updates, state = tx.update(grads, state, params, value=loss)
      return optax.apply_updates(params, updates), state

    step = jax.shard_map(local, mesh=mesh, in_specs=(P(), P(), P("batch")), out_specs=(P(), P()),
                         check_vma=False)
    state = tx.init(params)
    cost = per_step_cost(step, params, state, jnp.ones((64, 8)), large=args.params)
    leaves = jax.tree.leaves(state)
    big = [x for x in leaves if x.size >= args.params]
    small = sum(x.nbytes for x in leaves if x.size < args.params)
    anchor_collectives = 1  # the user's gradient pmean
    extra = cost.collectives - anchor_collectives
    print(f"| {name} | {cost.kernels} | {cost.whiles} | {cost.large_selects} | "
          f"{cost.collectives} ({cost.collective_bytes:,} B; {extra:+d} beside the gradient's) | "
          f"{cost.decision_instructions} | {small:,} | "
          f"{sum(x.nbytes for x in big) / param_bytes:.0f} |")


if __name__ == "__main__":
  main()
