"""Checks every schedule in the shared list passes: JAX-value behaviour and Optax use."""

import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax
from cases import CASE_IDS, CASES, MAX_HORIZON, approx_rule, assert_jit_close, at, pad, steps_for

CASE_PARAMS = pytest.mark.parametrize("case", CASES, ids=CASE_IDS)


def _float_leaves_scaled(schedule, factor):
  """The same schedule with every float leaf multiplied by ``factor``."""
  def f(x):
    arr = np.asarray(x)
    return x * factor if arr.dtype.kind == "f" else x
  return jax.tree.map(f, schedule)


def test_schedules_of_different_classes_have_different_tree_structures():
  """``jax.jit`` caches a program by the tree structure of its arguments, so two schedule
  classes with the same leaves (``step_decay`` and ``inverse_sqrt``: a float, an int, a float)
  must not share one: with ``jax.tree_util.register_dataclass`` in jax 0.10.2 they compared
  equal, and a jitted call now and then ran another class's program (tests/README.md)."""
  from stateful_cases import CASES as STATEFUL_CASES
  params = {"w": jnp.zeros(3)}
  objects = ([c.build() for c in CASES]
             + [c.schedule(None) for c in STATEFUL_CASES if c.schedule is not None]
             + [c.lrjax_state(jax.eval_shape(c.build(None).init, params))  # structure only
                for c in STATEFUL_CASES])
  assert len({type(obj) for obj in objects}) >= 25  # 29 classes on 2026-12-06
  trees = [(type(obj).__name__, jax.tree.structure(obj)) for obj in objects]
  for i, (name_a, tree_a) in enumerate(trees):
    for name_b, tree_b in trees[i + 1:]:
      assert name_a == name_b or tree_a != tree_b, (name_a, name_b)
  step, inv = lrjax.step_decay(0.5, 10, 40.0), lrjax.inverse_sqrt(0.5, 10, timescale=40.0)
  assert [np.asarray(x).dtype for x in jax.tree.leaves(step)] == [
      np.asarray(x).dtype for x in jax.tree.leaves(inv)]
  assert jax.tree.structure(step) != jax.tree.structure(inv)
  rebuilt = jax.tree.unflatten(jax.tree.structure(inv), jax.tree.leaves(inv))
  assert type(rebuilt) is type(inv) and repr(rebuilt) == repr(inv)
  paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(inv)[0]]
  assert paths == [".peak_value", ".warmup_steps", ".timescale"]  # as register_dataclass keys


def test_one_jitted_function_runs_each_schedule_class_by_its_own_program():
  """The symptom behind the structure test above, through ``jax.jit``'s own cache: 48 schedule
  classes made by ``schedule_class`` with one float leaf each, each scaling it by its own
  factor, all passed to one jitted function. With ``register_dataclass``'s nodes 4-12 of 60
  such calls returned another class's value (5 runs on 2026-12-06)."""
  from lrjax.schedules._base import Schedule, schedule_class
  value_of = jax.jit(lambda schedule: schedule(0.0))
  wrong = []
  for i in range(48):
    cls = schedule_class(f"_test_factor_{i}")(type(f"Factor{i}", (Schedule,), {
        "__annotations__": {"x": float}, "_value": lambda self, t, k=float(i): self.x * k}))
    got = float(value_of(cls(1.0)))
    if got != i:
      wrong.append((i, got))
  assert not wrong, wrong


def test_the_jit_check_says_what_a_second_call_gives():
  """The check behind the jit-against-eager tests fails on a wrong value or shape, and says
  whether the same call gives the same wrong values again or the right ones."""
  assert_jit_close(lambda: np.ones(3), lambda: np.ones(3) + 1e-7, "inputs")
  calls = iter([np.zeros(3), np.ones(3)])
  with pytest.raises(AssertionError, match="again gives the right values.*\ninputs: x"):
    assert_jit_close(lambda: next(calls), lambda: np.ones(3), "x")
  with pytest.raises(AssertionError, match="again gives the same values"):
    assert_jit_close(lambda: np.zeros(3), lambda: np.ones(3), "x")
  with pytest.raises(AssertionError, match=r"shape \(1, 3\)"):
    assert_jit_close(lambda: np.ones((1, 3)), lambda: np.ones(3), "x")
  with pytest.raises(AssertionError):
    assert_jit_close(lambda: 1.0, lambda: 1.001, "x", close=approx_rule)


@CASE_PARAMS
def test_jit_equals_eager(case):
  s = case.build()
  t = steps_for(case)
  assert_jit_close(lambda: at(s, t), lambda: s(t), (s, "steps", t[:12]))
  for x in (0, 3, case.horizon):
    assert_jit_close(lambda: at(s, x), lambda: s(x), (s, "step", x), close=approx_rule)


@CASE_PARAMS
def test_output_is_float32_with_the_step_shape(case):
  s = case.build()
  for step in (jnp.int32(3), 3, 3.5, jnp.arange(6), jnp.arange(12.0).reshape(3, 4)):
    out = s(step)
    assert out.dtype == jnp.float32
    assert out.shape == jnp.shape(step)


@CASE_PARAMS
def test_vmap_over_steps_equals_array_call(case):
  s = case.build()
  t = jnp.asarray(steps_for(case), jnp.float32)
  np.testing.assert_allclose(jax.vmap(s)(t), s(t), rtol=1e-5, atol=1e-6)


_at_each = jax.jit(jax.vmap(lambda s, t: s(t), in_axes=(0, None)))


@CASE_PARAMS
def test_vmap_over_a_stack_of_schedules(case):
  variants = [_float_leaves_scaled(case.build(), f) for f in (0.5, 1.0, 2.0, 3.0)]
  stacked = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *variants)
  t = jnp.asarray(steps_for(case), jnp.float32)
  assert_jit_close(lambda: _at_each(stacked, t),
                   lambda: np.stack([np.asarray(v(t)) for v in variants]),
                   (stacked, "steps", t[:12]))


@CASE_PARAMS
def test_no_retrace_when_a_value_changes(case):
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def lr_at(schedule, t):
    return schedule(t)

  s = case.build()
  t = jnp.float32(case.horizon // 2)
  a = lr_at(s, t)
  b = lr_at(_float_leaves_scaled(s, 2.0), t)
  lr_at(_float_leaves_scaled(s, 0.25), t + 1)
  if any(np.asarray(x).dtype.kind == "f" for x in jax.tree.leaves(s)) and float(a) != 0:
    assert float(b) != float(a)


@CASE_PARAMS
def test_config_round_trip_through_json(case):
  s = case.build()
  config = s.to_config()
  text = json.dumps(config)
  rebuilt = lrjax.from_config(json.loads(text))
  assert type(rebuilt) is type(s)
  assert repr(rebuilt) == repr(s)
  assert rebuilt.to_config() == config
  t = steps_for(case)
  np.testing.assert_array_equal(np.asarray(rebuilt(t)), np.asarray(s(t)))


@CASE_PARAMS
def test_repr_is_the_call_that_rebuilds_it(case):
  s = case.build()
  text = repr(s)
  assert text.startswith(f"lrjax.{s.name}(")
  rebuilt = eval(text, {"lrjax": lrjax})  # pylint: disable=eval-used
  t = steps_for(case)
  np.testing.assert_array_equal(np.asarray(rebuilt(t)), np.asarray(s(t)))


@CASE_PARAMS
def test_create_by_name(case):
  s = case.build()
  config = s.to_config()
  name = config.pop("name")
  rebuilt = lrjax.create(name, **{k: lrjax.from_config(v) if isinstance(v, dict) else
                                  ([lrjax.from_config(x) for x in v]
                                   if isinstance(v, list) and v and isinstance(v[0], dict)
                                   else v) for k, v in config.items()})
  t = steps_for(case)  # every step the values are tested at (one shape for every case)
  np.testing.assert_array_equal(np.asarray(rebuilt(t)), np.asarray(s(t)))


@CASE_PARAMS
def test_drop_in_optax_sgd_applies_the_schedule(case):
  s = case.build()
  tx = optax.sgd(s)
  params = {"w": jnp.zeros(3)}
  state = tx.init(params)
  grads = {"w": jnp.ones(3)}
  step = jax.jit(tx.update)
  total = 0.0
  for n in range(6):
    updates, state = step(grads, state, params)
    params = optax.apply_updates(params, updates)
    total += float(s(n))
  np.testing.assert_allclose(params["w"], -total * np.ones(3), rtol=1e-5, atol=1e-7)


@CASE_PARAMS
def test_inject_hyperparams_records_the_learning_rate(case):
  s = case.build()
  tx = optax.inject_hyperparams(optax.adam)(learning_rate=s)
  params = jnp.zeros(2)
  state = tx.init(params)
  for n in range(4):
    _, state = tx.update(jnp.ones(2), state, params)
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(float(s(n)), rel=1e-6)


def test_drop_in_optax_adam_matches_optax_schedule():
  ours = lrjax.warmup_cosine_decay(0.0, 1e-2, 5, 50, 1e-4)
  theirs = optax.warmup_cosine_decay_schedule(0.0, 1e-2, 5, 50, 1e-4)
  p1 = p2 = jnp.linspace(-1.0, 1.0, 8)
  t1, t2 = optax.adam(ours), optax.adam(theirs)
  s1, s2 = t1.init(p1), t2.init(p2)
  for _ in range(60):
    u1, s1 = t1.update(2 * p1, s1)
    u2, s2 = t2.update(2 * p2, s2)
    p1, p2 = p1 + u1, p2 + u2
  np.testing.assert_allclose(p1, p2, rtol=1e-5, atol=1e-7)


def test_schedule_as_jit_argument_does_not_recompile_optax_issue_577():
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def train_step(params, opt_count, schedule):
    lr = schedule(opt_count)
    return params - lr * 2 * params

  params = jnp.ones(4)
  for peak in (1e-3, 3e-3, 1e-2, 3e-2):
    params = train_step(params, jnp.int32(7), lrjax.wsd(peak, 10, 100, 20))


def test_vmap_sweep_of_16_peak_learning_rates_in_one_program():
  peaks = jnp.logspace(-4, -1, 16)

  def final_loss(peak):
    schedule = lrjax.warmup_cosine_decay(0.0, peak, 10, 100)
    def body(w, t):
      return w - schedule(t) * 2 * w, None
    w, _ = jax.lax.scan(body, jnp.float32(1.0), jnp.arange(100))
    return w ** 2

  losses = jax.jit(jax.vmap(final_loss))(peaks)
  assert losses.shape == (16,)
  # Larger peaks shrink a quadratic faster while peak * 2 < 1.
  assert bool(jnp.all(jnp.diff(losses) < 0))


def _grad_case_ids():
  return [c.id for c in CASES if c.id not in _NON_DIFFERENTIABLE]


# Cases with no float hyperparameter to differentiate.
_NON_DIFFERENTIABLE = set()


@CASE_PARAMS
def test_grad_wrt_hyperparameters_matches_finite_differences(case):
  s = case.build()
  leaves, treedef = jax.tree.flatten(s)
  float_idx = [i for i, x in enumerate(leaves) if np.asarray(x).dtype.kind == "f"]
  if not float_idx:
    pytest.skip("no float hyperparameter")
  # Steps away from every boundary, where each schedule is smooth in its values; one
  # length for every case (the last step repeated), so the eager programs are shared.
  t = jnp.asarray(pad(np.arange(case.horizon) + 0.43, MAX_HORIZON), jnp.float32)

  def total(xs):
    new = list(leaves)
    for i, x in zip(float_idx, xs):
      new[i] = x
    return jnp.sum(jax.tree.unflatten(treedef, new)(t))

  with jax.enable_x64(True):
    xs = [jnp.asarray(leaves[i], jnp.float64) for i in float_idx]
    grads = jax.grad(total)(xs)
    for k, x in enumerate(xs):
      eps = 1e-6 * max(1.0, float(jnp.max(jnp.abs(x))))
      up = [y + eps if j == k else y for j, y in enumerate(xs)]
      down = [y - eps if j == k else y for j, y in enumerate(xs)]
      fd = (total(up) - total(down)) / (2 * eps)
      np.testing.assert_allclose(np.sum(grads[k]), fd, rtol=1e-4, atol=1e-6,
                                 err_msg=f"leaf {float_idx[k]}")


def test_grad_of_a_hyperparameter_through_the_constructor():
  def lr(peak):
    return lrjax.wsd(peak, 10, 10, 10)(25.0)
  assert float(jax.grad(lr)(2.0)) == pytest.approx(1 - np.sqrt(0.5), rel=1e-5)


def test_config_and_repr_write_numbers_as_the_user_wrote_them():
  """float32 storage must not leak into configs: 1e-3, not 0.0010000000474974513."""
  import jax
  import json
  built = [jax.jit(lambda: lrjax.cosine_decay(1e-3, 100, end_value=3e-7))(),
           lrjax.piecewise_constant([10, 20], [0.1, 0.01, 1e-3]),
           lrjax.join([lrjax.constant(1e-3), lrjax.linear(1e-3, 1e-5, 10)], [5]),
           lrjax.reduce_on_plateau(jax.numpy.float32(3e-4), factor=0.3)]
  for s in built:
    text = json.dumps(s.to_config()) + repr(s)
    assert "0000000" not in text and "9999999" not in text, text
    again = lrjax.from_config(s.to_config())
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jax.numpy.all(a == b)), again, s))
  assert "values=[0.1, 0.01, 0.001]" in repr(built[1])
