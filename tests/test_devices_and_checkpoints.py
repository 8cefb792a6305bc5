"""Stateful schedules on 8 CPU devices and through orbax checkpoints."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

import lrjax

N_DEV = 8

SCHEDULES = {
    "reduce_on_plateau": lambda ax: lrjax.reduce_on_plateau(0.1, patience=3, axis_name=ax),
    "greedy": lambda ax: lrjax.greedy(0.1, patience=3, window=10, max_value=1.0, axis_name=ax),
    "window_decay": lambda ax: lrjax.window_decay(0.1, window=20, axis_name=ax),
}


def _per_device_losses(steps):
  rng = np.random.default_rng(0)
  trend = np.concatenate([np.linspace(2, 1, steps // 2), np.ones(steps - steps // 2)])
  return (trend[:, None] + 0.3 * np.arange(N_DEV)[None, :] +
          0.2 * rng.standard_normal((steps, N_DEV))).astype(np.float32)


def block(tree):
  """Waits for a step with collectives before dispatching the next.

  XLA's CPU collectives over forced host devices deadlock now and then (the
  rendezvous aborts after 40 s) when consecutive steps overlap under async
  dispatch; seen with jax 0.10.2 on 2 cores even for a bare ``pmap`` of one
  ``pmean``. Blocking each step avoids it. Real accelerators are unaffected.
  """
  return jax.block_until_ready(tree)


@pytest.fixture(scope="module", autouse=True)
def _need_eight_devices():
  if jax.device_count() < N_DEV:
    pytest.skip("needs 8 devices (XLA_FLAGS=--xla_force_host_platform_device_count=8)")


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_pmap_replicas_hold_identical_schedule_state(name):
  tx = optax.inject_hyperparams(optax.sgd)(learning_rate=SCHEDULES[name]("devices"))
  params = jnp.ones((N_DEV, 4))
  state = jax.pmap(tx.init)(params)

  @functools.partial(jax.pmap, axis_name="devices")
  def step(params, state, loss):
    grads = params * loss  # different per device
    updates, state = tx.update(grads, state, params, value=loss)
    return optax.apply_updates(params, updates), state

  losses = _per_device_losses(200)
  for t in range(200):
    params, state = block(step(params, state, jnp.asarray(losses[t])))
  sched_state = state.hyperparams_states["learning_rate"]
  for leaf in jax.tree.leaves(sched_state) + [state.hyperparams["learning_rate"]]:
    leaf = np.asarray(leaf)
    np.testing.assert_array_equal(leaf, np.broadcast_to(leaf[0], leaf.shape))
  # The replicas decided on the device mean: the same as one device fed the mean.
  single = SCHEDULES[name](None)
  s = single.init()
  for t in range(200):
    s = single.update(s, value=jnp.float32(losses[t].mean()))
  np.testing.assert_allclose(float(lrjax.current_lr(state, replicated=True)), float(s.lr),
                             rtol=1e-5)
  assert int(np.asarray(sched_state.count)[0]) == 200


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_sharded_jit_and_shard_map(name):
  mesh = Mesh(np.array(jax.devices()[:N_DEV]), ("batch",))
  batch_sharding = NamedSharding(mesh, P("batch"))
  losses = _per_device_losses(200)

  # jit over a sharded batch: the loss is a global mean, the state replicated.
  s = SCHEDULES[name](None)
  step = jax.jit(lambda st, per_example: s.update(st, value=jnp.mean(per_example)))
  state = s.init()
  for t in range(200):
    state = step(state, jax.device_put(jnp.asarray(losses[t]), batch_sharding))
  for leaf in jax.tree.leaves(state):
    assert leaf.sharding.is_fully_replicated

  # shard_map with axis_name: each device sees its own loss, pmean makes one decision.
  s_map = SCHEDULES[name]("batch")
  mapped = jax.jit(jax.shard_map(lambda st, loss: s_map.update(st, value=loss[0]), mesh=mesh,
                                 in_specs=(P(), P("batch")), out_specs=P(),
                                 check_vma=False))
  state_map = s_map.init()
  for t in range(200):
    state_map = block(mapped(state_map, jax.device_put(jnp.asarray(losses[t]), batch_sharding)))
  chex.assert_trees_all_close(state_map, state, rtol=1e-5)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_checkpoint_mid_window_resumes_bit_identically(name, tmp_path):
  ocp = pytest.importorskip("orbax.checkpoint")
  s = SCHEDULES[name](None)
  tx = optax.inject_hyperparams(optax.adam)(learning_rate=s)
  losses = _per_device_losses(120)[:, 0]

  @jax.jit
  def step(params, state, loss):
    updates, state = tx.update(params * loss, state, params, value=loss)
    return optax.apply_updates(params, updates), state

  def run(params, state, ts):
    for t in ts:
      params, state = step(params, state, jnp.float32(losses[t]))
    return params, state

  params0 = jnp.linspace(-1.0, 1.0, 5)
  straight = run(params0, tx.init(params0), range(120))

  half = run(params0, tx.init(params0), range(57))  # mid-window for every schedule here
  checkpointer = ocp.StandardCheckpointer()
  path = tmp_path / "ckpt"
  checkpointer.save(path, {"params": half[0], "opt_state": half[1]})
  checkpointer.wait_until_finished()
  template = {"params": params0, "opt_state": tx.init(params0)}
  restored = checkpointer.restore(path, jax.tree.map(ocp.utils.to_shape_dtype_struct, template))
  resumed = run(restored["params"], restored["opt_state"], range(57, 120))
  chex.assert_trees_all_equal(resumed, straight)
