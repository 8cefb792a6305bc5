"""Many processes on JAX's distributed runtime: one LR decision across every host.

Each process feeds its own rows of every global batch (``make_array_from_process_local_data``)
to a ``jit``-compiled step over a global mesh (``NamedSharding``); ``reduce_on_plateau`` lives in
the replicated optimizer state, so every process reads the same learning rate. Process 0 prints
the decisions.

  python examples/multi_host.py --num-processes 2       # launches 2 local processes (CPU, gloo)
  python examples/multi_host.py --coordinator HOST:PORT --num-processes N --process-id I
                                                        # one process of a real cluster
"""

import argparse
import os
import socket
import subprocess
import sys


def train(args):
  import jax
  if args.local:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=args.coordinator,
                             num_processes=args.num_processes, process_id=args.process_id)
  import jax.numpy as jnp
  import numpy as np
  import optax
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

  import lrjax

  mesh = Mesh(np.array(jax.devices()), ("batch",))
  replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P("batch"))
  tx = optax.inject_hyperparams(optax.adam)(learning_rate=lrjax.reduce_on_plateau(
      0.05, factor=0.5, patience=1, window=10, min_value=1e-3))  # decide on 10-step means
  rows = 64 * jax.device_count() // jax.process_count()

  @jax.jit
  def step(params, state, x, y):
    loss, grads = jax.value_and_grad(lambda p: jnp.mean((x @ p - y) ** 2))(params)
    updates, state = tx.update(grads, state, params, value=loss)
    return optax.apply_updates(params, updates), state, loss

  params = jax.device_put(jnp.zeros(16), replicated)
  state = jax.jit(tx.init, out_shardings=replicated)(params)
  rng = np.random.default_rng(1000 + jax.process_index())  # each process: its own data
  lr = float(lrjax.current_lr(state))
  for t in range(args.steps):
    x = rng.standard_normal((rows, 16)).astype(np.float32)
    y = (x @ np.linspace(-1, 1, 16) + 0.3 * rng.standard_normal(rows)).astype(np.float32)
    batch = [jax.make_array_from_process_local_data(sharded, a) for a in (x, y)]
    params, state, loss = step(params, state, *batch)
    new_lr = float(lrjax.current_lr(state))
    if new_lr != lr and jax.process_index() == 0:
      print(f"step {t}: reduce_on_plateau cut the learning rate to {new_lr:.4g} on every "
            f"process (global loss {float(loss):.4f})", flush=True)
    lr = new_lr
  if jax.process_index() == 0:
    print(f"{jax.process_count()} processes, {jax.device_count()} devices: final learning rate "
          f"{lr:.4g}, global loss {float(loss):.4f}", flush=True)
  jax.distributed.shutdown()


def launch_local(args):
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
  procs = [subprocess.Popen([sys.executable, __file__, "--coordinator", f"127.0.0.1:{port}",
                             "--num-processes", str(args.num_processes), "--process-id", str(i),
                             "--steps", str(args.steps), "--local"], env=env,
                            stdout=subprocess.PIPE if i == 0 else subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, text=True)
           for i in range(args.num_processes)]
  try:
    out = procs[0].communicate(timeout=600)[0]
    print("\n".join(line for line in out.splitlines() if "[Gloo]" not in line))
    codes = [p.wait(timeout=600) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  if any(codes):
    sys.exit(f"a process failed: exit codes {codes}")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--num-processes", type=int, default=2)
  parser.add_argument("--process-id", type=int, default=None)
  parser.add_argument("--coordinator", default=None, help="HOST:PORT of process 0")
  parser.add_argument("--steps", type=int, default=200)
  parser.add_argument("--local", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.coordinator is None:
    launch_local(args)
  else:
    train(args)


if __name__ == "__main__":
  main()
