"""One process of the multi-process tests (``test_multiprocess.py``), or the one-process reference.

Every case trains a linear model for ``STEPS`` updates on a global batch sharded over all
devices of all processes (``jax.make_array_from_process_local_data``: each process feeds its
own rows), with ``jit`` and ``NamedSharding`` (``mode="jit"``) or ``shard_map`` with
``axis_name`` (``mode="shard_map"``); one orbax checkpoint of every case half-way, written by
every process, is restored by every process and every case continues. Results go to
``OUT/<case>_<mode>_<pid>.npz``.

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


class Case:
  """One case on the global mesh: its jitted step, init and global batches."""

  def __init__(self, name, mode):
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

    mesh = Mesh(np.array(jax.devices()), ("batch",))
    self.replicated = replicated = NamedSharding(mesh, P())
    self.sharded = NamedSharding(mesh, P("batch"))
    tx = cases()[name]("batch" if mode == "shard_map" else None)

    def loss_fn(params, x, y):
      return jnp.mean((x @ params["w"] - y) ** 2)

    if mode == "jit":
      def step(params, state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, state = tx.update(grads, state, params, value=loss)
        return optax.apply_updates(params, updates), state
      self.step = jax.jit(step, out_shardings=(replicated, replicated))
    else:
      def local_step(params, state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        grads = jax.lax.pmean(grads, "batch")  # data parallel; the schedule averages the loss
        updates, state = tx.update(grads, state, params, value=loss)
        return optax.apply_updates(params, updates), state
      self.step = jax.jit(jax.shard_map(local_step, mesh=mesh,
                                        in_specs=(P(), P(), P("batch"), P("batch")),
                                        out_specs=(P(), P()), check_vma=False))
    self.init_state = jax.jit(tx.init, out_shardings=replicated)  # one program for every init

  def init(self):
    import jax
    import jax.numpy as jnp
    params = jax.device_put({"w": jnp.zeros(DIM)}, self.replicated)
    return params, self.init_state(params)

  def batch(self, t):
    import jax
    rows = ROWS // jax.process_count()
    lo = jax.process_index() * rows
    x, y = global_batch(t)
    return (jax.make_array_from_process_local_data(self.sharded, x[lo:lo + rows], x.shape),
            jax.make_array_from_process_local_data(self.sharded, y[lo:lo + rows], y.shape))

  def train(self, params, state, ts):
    import jax
    for t in ts:
      params, state = jax.block_until_ready(self.step(params, state, *self.batch(t)))
    return params, state

  def template(self, tree):
    import jax
    return jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=self.replicated), tree)


def local(tree):
  import jax
  import numpy as np
  return [np.asarray(leaf.addressable_data(0)) for leaf in jax.tree.leaves(tree)]


def run_case(name, mode):
  """One process's leaves of one case after STEPS updates (the one-process reference)."""
  case = Case(name, mode)
  return local(case.train(*case.init(), range(STEPS)))


def run_all(keys, ckpt_dir):
  """Every case's leaves after STEPS updates, straight and resumed: all cases trained to HALF
  are written in one orbax checkpoint by every process, restored by every process, continued."""
  import orbax.checkpoint as ocp
  built = {key: Case(*key) for key in keys}
  straight = {key: local(c.train(*c.init(), range(STEPS))) for key, c in built.items()}
  half = {f"{n}_{m}": dict(zip(("params", "opt_state"), c.train(*c.init(), range(HALF))))
          for (n, m), c in built.items()}
  checkpointer = ocp.StandardCheckpointer()
  path = os.path.join(ckpt_dir, "half")
  checkpointer.save(path, half)
  checkpointer.wait_until_finished()
  template = {f"{n}_{m}": c.template(dict(zip(("params", "opt_state"), c.init())))
              for (n, m), c in built.items()}
  restored = checkpointer.restore(path, template)
  resumed = {}
  for (n, m), c in built.items():
    r = restored[f"{n}_{m}"]
    resumed[n, m] = local(c.train(r["params"], r["opt_state"], range(HALF, STEPS)))
  return {key: (straight[key], resumed[key]) for key in keys}


def main():
  pid, nproc, port, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
  names = sys.argv[5].split(",") if len(sys.argv) > 5 else None
  flags = [f for f in os.environ.get("XLA_FLAGS", "").split()  # the suite's, but 4 devices
           if not f.startswith("--xla_force_host_platform_device_count")]
  os.environ["XLA_FLAGS"] = " ".join(flags + ["--xla_force_host_platform_device_count=4"])
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import jax
  import numpy as np
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=nproc,
                             process_id=pid, initialization_timeout=60)
  keys = [(name, mode) for name in names or sorted(cases()) for mode in ("jit", "shard_map")]
  for (name, mode), (straight, resumed) in run_all(keys, os.path.join(out, "ckpt")).items():
    np.savez(os.path.join(out, f"{name}_{mode}_{pid}.npz"), *straight, *resumed)
  print(f"process {pid}: {len(keys)} cases done", flush=True)
  jax.distributed.shutdown()


if __name__ == "__main__":
  main()
