"""The shared rules, run over the one list of stateful objects (``stateful_cases.py``)."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax
from lrjax import _packed
from conftest import assert_same_run
from stateful_cases import CASE_IDS, CASES, PARAM_LIKE, SCHEDULE_CASES
from test_devices_and_checkpoints import block

N_DEV = 8
PER_CASE = pytest.mark.parametrize("case", CASES, ids=CASE_IDS)


def _noise(steps, seed=0):
  rng = np.random.default_rng(seed)
  trend = np.concatenate([np.linspace(0.5, 0.0, steps // 2), np.zeros(steps - steps // 2)])
  return (trend + 0.05 * rng.standard_normal(steps)).astype(np.float32)


def _loss(params):
  return 0.5 * sum(jnp.sum(x.astype(jnp.float32) ** 2) for x in jax.tree.leaves(params))


def make_step(tx):
  """One update on a quadratic; the value fed is the loss plus ``noise``."""
  def step(params, state, noise):
    loss, grads = jax.value_and_grad(_loss)(params)
    updates, state = tx.update(grads, state, params, value=loss + noise)
    return optax.apply_updates(params, updates), state
  return step


def _params(dtype=jnp.float32):
  return {"w": jnp.linspace(-1.0, 1.0, 4).astype(dtype), "b": jnp.ones((2, 3), dtype)}


@functools.cache
def _built(case):
  """Each case's transform, built once for the module (a pure object: tests share it)."""
  return case.build(None)


@functools.cache
def _jitted_step(tx):
  """One jitted step per transform, shared by every ``_run`` of it (params and state are
  arguments), instead of a new program per call."""
  return jax.jit(make_step(tx))


def _run(tx, params, state, noises):
  step = _jitted_step(tx)
  for n in noises:
    params, state = step(params, state, jnp.float32(n))
  return params, state


@PER_CASE
def test_nan_values_and_gradients_are_skipped_and_counted(case):
  tx = _built(case)
  params = _params()
  state = tx.init(params)
  noises = _noise(30)
  params, state = _run(tx, params, state, noises[:10])

  @jax.jit
  def bad_step(params, state):
    grads = jax.tree.map(lambda p: jnp.full_like(p, jnp.nan), params)
    _, state = tx.update(grads, state, params, value=jnp.float32(jnp.nan))
    return state  # the bad update is not applied, as optax.apply_if_finite would not

  before = case.lrjax_state(state)
  state = bad_step(params, state)
  after = case.lrjax_state(state)
  assert int(after.num_nonfinite) == int(before.num_nonfinite) + 1
  assert int(after.count) == int(before.count) + 1
  params, state = _run(tx, params, state, noises[10:])
  final = case.lrjax_state(state)
  assert int(final.num_nonfinite) == 1
  assert np.isfinite(float(lrjax.current_lr(state)))
  for leaf in jax.tree.leaves(params):
    assert np.all(np.isfinite(np.asarray(leaf)))


@PER_CASE
def test_counters_saturate_instead_of_wrapping(case):
  tx = _built(case)
  params = _params()
  big = jnp.int32(2**31 - 1)
  def set_counters(path, leaf):
    last = path[-1] if path else None
    named = getattr(last, "name", None)
    return big if named in ("count", "num_nonfinite") else leaf

  # Found by name in the unpacked fields (a stateful schedule stores its scalars packed).
  state = _packed.repacked(jax.tree_util.tree_map_with_path(
      set_counters, _packed.unpacked(tx.init(params))))
  params, state = _run(tx, params, state, [np.nan, 0.0, 0.0])
  s = case.lrjax_state(state)
  assert int(s.count) == 2**31 - 1 and int(s.num_nonfinite) == 2**31 - 1
  assert np.isfinite(float(lrjax.current_lr(state)))


@PER_CASE
def test_bf16_params_keep_float32_statistics(case):
  tx = _built(case)
  params = _params(jnp.bfloat16)
  state = tx.init(params)
  loss, grads = jax.value_and_grad(_loss)(params)
  updates, state = jax.jit(tx.update)(grads, state, params, value=loss.astype(jnp.bfloat16))
  if case.schedule is None:  # lrjax makes the update (inject_hyperparams' is Optax's own)
    for u in jax.tree.leaves(updates):
      assert u.dtype == jnp.bfloat16
  s = case.lrjax_state(state)
  fields = s._asdict()
  for name in PARAM_LIKE:
    fields.pop(name, None)
  for leaf in jax.tree.leaves(fields):
    assert leaf.dtype in (jnp.float32, jnp.int32), (case.id, leaf.dtype)


@PER_CASE
def test_state_structure_and_dtypes_never_change_and_no_retrace(case):
  tx = _built(case)
  params = _params()
  state = tx.init(params)
  chex.clear_trace_counter()
  step = jax.jit(chex.assert_max_traces(make_step(tx), n=1))
  new_params, new_state = params, state
  for n in _noise(25):
    new_params, new_state = step(new_params, new_state, jnp.float32(n))
  chex.assert_trees_all_equal_structs(state, new_state)
  chex.assert_trees_all_equal_shapes_and_dtypes(state, new_state)
  # A lax.cond between the state before and after an update must trace.
  cond = jax.jit(lambda p, st, pred: jax.lax.cond(
      pred, lambda x: make_step(tx)(p, x, jnp.float32(0.0))[1], lambda x: x, st))
  chex.assert_trees_all_equal_shapes_and_dtypes(cond(params, state, True), state)


@PER_CASE
def test_state_and_object_pytree_round_trip(case):
  tx = _built(case)
  state = _run(tx, _params(), tx.init(_params()), _noise(13))[1]
  leaves, treedef = jax.tree.flatten(state)
  chex.assert_trees_all_equal(jax.tree.unflatten(treedef, leaves), state)
  if case.schedule is not None:
    s = case.schedule(None)
    leaves, treedef = jax.tree.flatten(s)
    rebuilt = jax.tree.unflatten(treedef, leaves)
    assert type(rebuilt) is type(s) and repr(rebuilt) == repr(s)
    assert repr(lrjax.from_config(s.to_config())) == repr(s)


@PER_CASE
def test_state_can_be_donated(case):
  """Regression: fields sharing one zero buffer made jit(donate_argnums=...) refuse the state."""
  tx = _built(case)
  step = jax.jit(make_step(tx), donate_argnums=(0, 1))
  params = _params()
  state = tx.init(params)
  for n in _noise(4):
    params, state = step(params, state, jnp.float32(n))
  assert np.all(np.isfinite(np.asarray(params["w"])))


@pytest.fixture(scope="module")
def eight_devices():
  if jax.device_count() < N_DEV:
    pytest.skip("needs 8 devices (XLA_FLAGS=--xla_force_host_platform_device_count=8)")


@PER_CASE
def test_eight_replicas_agree_and_equal_one_device_fed_the_mean(case, eight_devices):
  steps = 40
  tx = case.build("d")
  rng = np.random.default_rng(1)
  per_device = (_noise(steps)[:, None] + 0.3 * rng.standard_normal((steps, N_DEV))).astype(
      np.float32)

  @functools.partial(jax.pmap, axis_name="d")
  def step(params, state, noise):
    loss, grads = jax.value_and_grad(_loss)(params)
    grads = jax.lax.pmean(grads, "d")  # data parallel: gradients averaged, values per shard
    updates, state = tx.update(grads, state, params, value=loss + noise)
    return optax.apply_updates(params, updates), state

  params = jax.tree.map(lambda x: jnp.broadcast_to(x, (N_DEV,) + x.shape), _params())
  state = jax.pmap(tx.init)(params)
  for t in range(steps):
    params, state = block(step(params, state, jnp.asarray(per_device[t])))
  for leaf in jax.tree.leaves(state):
    leaf = np.asarray(leaf)
    np.testing.assert_array_equal(leaf, np.broadcast_to(leaf[0], leaf.shape))
  single_tx = _built(case)
  _, single = _run(single_tx, _params(), single_tx.init(_params()), per_device.mean(axis=1))
  np.testing.assert_allclose(float(lrjax.current_lr(state, replicated=True)),
                             float(lrjax.current_lr(single)), rtol=1e-5)
  assert int(np.asarray(case.lrjax_state(state).count)[0]) == steps


@PER_CASE
def test_orbax_checkpoint_mid_window_resumes_bit_identically(case, tmp_path):
  ocp = pytest.importorskip("orbax.checkpoint")
  tx = _built(case)
  noises = _noise(40)
  p0 = _params()
  straight = _run(tx, p0, tx.init(p0), noises)
  half = _run(tx, p0, tx.init(p0), noises[:17])  # mid-window (and mid-probe) for every case
  checkpointer = ocp.StandardCheckpointer()
  path = tmp_path / "ckpt"
  checkpointer.save(path, {"params": half[0], "opt_state": half[1]})
  checkpointer.wait_until_finished()
  template = {"params": p0, "opt_state": tx.init(p0)}
  restored = checkpointer.restore(path, jax.tree.map(ocp.utils.to_shape_dtype_struct, template))
  resumed = _run(tx, restored["params"], restored["opt_state"], noises[17:])
  assert_same_run(resumed, straight)


# ---- the stateful schedules as pytrees -------------------------------------------------

SCHEDULE_PARAMS = pytest.mark.parametrize("case", SCHEDULE_CASES,
                                          ids=[c.id for c in SCHEDULE_CASES])


@SCHEDULE_PARAMS
def test_jit_takes_the_schedule_as_an_argument_without_retracing(case):
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def lrs(schedule, values):
    def body(state, v):
      return schedule.update(state, value=v), schedule(state)
    return jax.lax.scan(body, schedule.init(), values)[1]

  values = jnp.asarray(2.0 + _noise(30))
  a = case.schedule(None)
  b = jax.tree.map(lambda x: x * 0.5 if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)
                   else x, a)  # new numeric values, same structure
  lrs(a, values)
  lrs(b, values)


def test_vmap_runs_a_stack_of_schedules():
  factors = [0.5, 0.25, 0.1]
  values = jnp.asarray([3.0, 2.0] + [2.0] * 8)

  def lrs(schedule):
    def body(state, v):
      return schedule.update(state, value=v), schedule(state)
    return jax.lax.scan(body, schedule.init(), values)[1]

  one = [lrs(lrjax.reduce_on_plateau(1.0, factor=f, patience=1)) for f in factors]
  stacked = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]),
                         *[lrjax.reduce_on_plateau(1.0, factor=f, patience=1) for f in factors])
  np.testing.assert_allclose(jax.vmap(lrs)(stacked), np.stack(one), rtol=1e-6)
  # Transcribed: reductions after updates 3 and 5 (patience 1, cooldown 0).
  for f, row in zip(factors, one):
    np.testing.assert_allclose(row, [1, 1, 1, 1, f, f, f * f, f * f, f ** 3, f ** 3], rtol=1e-6)


def test_grad_reaches_a_setting():
  def final_lr(factor):
    s = lrjax.reduce_on_plateau(1.0, factor=factor, patience=0)
    state = s.init()
    for v in (1.0, 1.0, 1.0):
      state = s.update(state, value=jnp.float32(v))
    return s(state)  # two reductions: factor ** 2

  assert float(final_lr(0.5)) == pytest.approx(0.25)
  assert float(jax.grad(final_lr)(0.5)) == pytest.approx(2 * 0.5, rel=1e-6)


def test_classes_are_built_by_keyword_only():
  with pytest.raises(TypeError):
    lrjax.stateful.ReduceOnPlateau(lrjax.constant(1.0), None, 0.5)
  s = lrjax.stateful.ReduceOnPlateau(base=lrjax.constant(1.0), factor=0.5)
  assert float(s(s.init())) == 1.0


def test_stateful_schedules_are_in_the_registry_with_a_readable_repr():
  s = lrjax.create("greedy", base=1e-3, window=7)
  assert repr(s).startswith("lrjax.greedy(base=lrjax.constant(value=0.001), ")
  assert s.window == 7 and "greedy" in lrjax.schedule_names()


_update = jax.jit(lambda schedule, state, value: schedule.update(state, value=value))


def test_a_packed_state_reads_by_name_batched_or_not():
  """A stateful schedule's scalars live in one float32 and one int32 vector; fields read by
  name (one value per member of a vmapped batch), a batched _replace is refused rather than
  changing the structure, and unpacked/repacked round-trip."""
  s = lrjax.reduce_on_plateau(0.1, patience=0)
  state = _update(s, _update(s, s.init(), jnp.float32(1.0)), jnp.float32(2.0))
  assert [k.name for k in jax.tree_util.tree_flatten_with_path(state)[0][0][0]] == [
      "scalars_float32"]
  fields = [leaf.dtype for leaf in jax.tree.leaves(state.view())]
  assert [(leaf.shape, leaf.dtype) for leaf in jax.tree.leaves(state)] == [
      ((fields.count(np.float32),), np.float32), ((fields.count(np.int32),), np.int32)]
  assert int(state.count) == 2 and float(state.scale) == pytest.approx(0.1)
  assert float(state.stats.best) == 1.0 and state._fields == state.view()._fields
  logical = _packed.unpacked(state)
  assert isinstance(logical, lrjax.stateful._core.ScheduleFields)
  chex.assert_trees_all_equal(_packed.repacked(logical), state)
  batched = jax.vmap(_update, in_axes=(None, None, 0))(s, s.init(), jnp.array([1.0, jnp.nan]))
  np.testing.assert_array_equal(batched.num_nonfinite, [0, 1])
  with pytest.raises(ValueError, match="batched"):
    batched._replace(count=jnp.zeros(2, jnp.int32))
