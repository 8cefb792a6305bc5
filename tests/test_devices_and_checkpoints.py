"""Stateful schedules under sharded jit and shard_map on 8 CPU devices."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from stateful_cases import SCHEDULES  # pmap and orbax run over every case in test_stateful_rules

N_DEV = 8


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
  # The states carry their schedules, which differ in axis_name only: compare the decisions.
  chex.assert_trees_all_close(state_map._replace(schedule=None), state._replace(schedule=None),
                              rtol=1e-5)
