"""One process of the multi-process tests (``test_multiprocess.py``), or the one-process reference.

Every case trains a linear model for ``STEPS`` updates on a global batch sharded over all
devices of all processes (``jax.make_array_from_process_local_data``: each process feeds its
own rows), with ``jit`` and ``NamedSharding`` (``mode="jit"``) or ``shard_map`` with
``axis_name`` (``mode="shard_map"``); one orbax checkpoint of every case half-way, written by
every process, is restored by every process and every case continues. The cases of one mode
update together in one compiled program (``Group``). Results go to
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


class Group:
  """Every case of one mode on the global mesh in one program: ``run`` applies updates
  ``start..stop-1`` to all of them in a ``fori_loop`` (the global batches stacked, each process
  holding its own rows), so a mode compiles one update program and one init, not one per case."""

  def __init__(self, names, mode):
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

    mesh = Mesh(np.array(jax.devices()), ("batch",))
    self.names = list(names)
    self.replicated = replicated = NamedSharding(mesh, P())
    self.sharded = NamedSharding(mesh, P(None, "batch"))
    built = cases()
    txs = {n: built[n]("batch" if mode == "shard_map" else None) for n in self.names}

    def loss_fn(params, x, y):
      return jnp.mean((x @ params["w"] - y) ** 2)

    def update(tx, params, state, x, y):
      loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
      if mode == "shard_map":
        grads = jax.lax.pmean(grads, "batch")  # data parallel; the schedule averages the loss
      updates, state = tx.update(grads, state, params, value=loss)
      return optax.apply_updates(params, updates), state

    def run(trees, xs, ys, start, stop):
      def body(t, trees):
        return {n: update(txs[n], *trees[n], xs[t], ys[t]) for n in self.names}
      return jax.lax.fori_loop(start, stop, body, trees)

    if mode == "jit":
      self.run = jax.jit(run, out_shardings=replicated)
    else:
      self.run = jax.jit(jax.shard_map(run, mesh=mesh,
                                       in_specs=(P(), P(None, "batch"), P(None, "batch"), P(),
                                                 P()),
                                       out_specs=P(), check_vma=False))
    self.init_states = jax.jit(lambda p: {n: txs[n].init(p) for n in self.names},
                               out_shardings=replicated)
    rows = ROWS // jax.process_count()
    lo = jax.process_index() * rows
    batches = [global_batch(t) for t in range(STEPS)]
    self.batches = [
        jax.make_array_from_process_local_data(self.sharded, a[:, lo:lo + rows], a.shape)
        for a in (np.stack([b[0] for b in batches]), np.stack([b[1] for b in batches]))]

  def init(self):
    """{case: (params, state)} before the first update."""
    import jax
    import jax.numpy as jnp
    params = jax.device_put({"w": jnp.zeros(DIM)}, self.replicated)
    states = self.init_states(params)
    return {n: (params, states[n]) for n in self.names}

  def train(self, trees, start, stop):
    import jax
    import jax.numpy as jnp
    return jax.block_until_ready(self.run(trees, *self.batches, jnp.int32(start),
                                          jnp.int32(stop)))

  def template(self, tree):
    import jax
    return jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=self.replicated), tree)


def local(tree):
  import jax
  import numpy as np
  return [np.asarray(leaf.addressable_data(0)) for leaf in jax.tree.leaves(tree)]


def run_straight(names, mode):
  """{case: this process's leaves after STEPS updates} (the one-process reference)."""
  group = Group(names, mode)
  return {n: local(tree) for n, tree in group.train(group.init(), 0, STEPS).items()}


def run_all(names, ckpt_dir):
  """{(case, mode): (leaves after STEPS updates straight, resumed)}: every case of every mode
  trained to HALF is written in one orbax checkpoint by every process, restored by every
  process, and continued."""
  import orbax.checkpoint as ocp
  groups = {mode: Group(names, mode) for mode in ("jit", "shard_map")}
  straight = {m: g.train(g.init(), 0, STEPS) for m, g in groups.items()}
  half = {m: g.train(g.init(), 0, HALF) for m, g in groups.items()}
  checkpointer = ocp.StandardCheckpointer()
  path = os.path.join(ckpt_dir, "half")
  checkpointer.save(path, half)
  checkpointer.wait_until_finished()
  template = {m: g.template(g.init()) for m, g in groups.items()}
  restored = checkpointer.restore(path, template)
  resumed = {m: g.train(restored[m], HALF, STEPS) for m, g in groups.items()}
  return {(n, m): (local(straight[m][n]), local(resumed[m][n])) for m in groups for n in names}


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
  results = run_all(names or sorted(cases()), os.path.join(out, "ckpt"))
  for (name, mode), (straight, resumed) in results.items():
    np.savez(os.path.join(out, f"{name}_{mode}_{pid}.npz"), *straight, *resumed)
  print(f"process {pid}: {len(results)} cases done", flush=True)
  jax.distributed.shutdown()


if __name__ == "__main__":
  main()
