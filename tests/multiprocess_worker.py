"""One process of the multi-process tests (``test_multiprocess.py``), or the one-process reference.

Every case trains a linear model for ``STEPS`` updates on a global batch sharded over all
devices of all processes (``jax.make_array_from_process_local_data``: each process feeds its
own rows), with ``jit`` and ``NamedSharding`` (``mode="jit"``) or ``shard_map`` with
``axis_name`` (``mode="shard_map"``); an orbax checkpoint written by every process half-way is
restored by every process and training continues. Results go to ``OUT/<case>_<mode>_<pid>.npz``.

  python tests/multiprocess_worker.py PROCESS_ID NUM_PROCESSES PORT OUT [CASES]
"""

import os
import sys

STEPS, HALF, ROWS, DIM = 24, 11, 64, 8


def cases():
  import optax
  import lrjax
  from stateful_cases import CASES
  out = {c.id: c.build for c in CASES}
  out.update({
      "scheduled_weight_decay": lambda ax: optax.chain(
          optax.inject_hyperparams(optax.sgd)(0.05), lrjax.scheduled_weight_decay(
              1e-2, lrjax.cosine_decay(0.05, STEPS), coupling="relative")),
      "ema_params": lambda ax: optax.chain(optax.sgd(0.05), lrjax.ema_params(0.9)),
      "swa": lambda ax: optax.chain(optax.sgd(0.05), lrjax.swa(start_step=5, every=3)),
      "lawa": lambda ax: optax.chain(optax.sgd(0.05), lrjax.lawa(k=3, every=4)),
  })
  return out


def global_batch(t):
  import numpy as np
  rng = np.random.default_rng(t)
  x = rng.standard_normal((ROWS, DIM)).astype(np.float32)
  y = (x @ np.linspace(-1.0, 1.0, DIM) + 0.1 * rng.standard_normal(ROWS)).astype(np.float32)
  return x, y


def run_case(name, mode, ckpt_dir, resume=True):
  """Trains one case on the global mesh; returns the leaves after STEPS updates, straight and
  (with ``resume``) resumed from a checkpoint at HALF, else None."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax
  import orbax.checkpoint as ocp
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

  mesh = Mesh(np.array(jax.devices()), ("batch",))
  replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P("batch"))
  tx = cases()[name]("batch" if mode == "shard_map" else None)
  rows = ROWS // jax.process_count()
  lo = jax.process_index() * rows

  def loss_fn(params, x, y):
    return jnp.mean((x @ params["w"] - y) ** 2)

  if mode == "jit":
    def step(params, state, x, y):
      loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
      updates, state = tx.update(grads, state, params, value=loss)
      return optax.apply_updates(params, updates), state
    step = jax.jit(step, out_shardings=(replicated, replicated))
  else:
    def local_step(params, state, x, y):
      loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
      grads = jax.lax.pmean(grads, "batch")  # data parallel; the schedule averages the loss
      updates, state = tx.update(grads, state, params, value=loss)
      return optax.apply_updates(params, updates), state
    step = jax.jit(jax.shard_map(local_step, mesh=mesh, in_specs=(P(), P(), P("batch"),
                                                                  P("batch")),
                                 out_specs=(P(), P()), check_vma=False))

  def batch(t):
    x, y = global_batch(t)
    return (jax.make_array_from_process_local_data(sharded, x[lo:lo + rows], x.shape),
            jax.make_array_from_process_local_data(sharded, y[lo:lo + rows], y.shape))

  init_state = jax.jit(tx.init, out_shardings=replicated)  # one program for every init

  def init():
    params = jax.device_put({"w": jnp.zeros(DIM)}, replicated)
    return params, init_state(params)

  def train(params, state, ts):
    for t in ts:
      params, state = jax.block_until_ready(step(params, state, *batch(t)))
    return params, state

  straight = train(*init(), range(STEPS))

  def local(tree):
    return [np.asarray(leaf.addressable_data(0)) for leaf in jax.tree.leaves(tree)]

  if not resume:
    return local(straight), None
  half = train(*init(), range(HALF))
  checkpointer = ocp.StandardCheckpointer()
  path = os.path.join(ckpt_dir, f"{name}_{mode}")
  checkpointer.save(path, {"params": half[0], "opt_state": half[1]})
  checkpointer.wait_until_finished()
  template = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated),
                          {"params": init()[0], "opt_state": init()[1]})
  restored = checkpointer.restore(path, template)
  resumed = train(restored["params"], restored["opt_state"], range(HALF, STEPS))
  return local(straight), local(resumed)


def main():
  pid, nproc, port, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
  names = sys.argv[5].split(",") if len(sys.argv) > 5 else None
  os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import jax
  import numpy as np
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=nproc,
                             process_id=pid, initialization_timeout=60)
  for name in names or sorted(cases()):
    for mode in ("jit", "shard_map"):
      straight, resumed = run_case(name, mode, os.path.join(out, "ckpt"))
      np.savez(os.path.join(out, f"{name}_{mode}_{pid}.npz"),
               *straight, *[np.asarray(x) for x in resumed])
      print(f"process {pid}: {name} {mode} done", flush=True)
  jax.distributed.shutdown()


if __name__ == "__main__":
  main()
