"""window_search: probes from one snapshot, exact rollback, forecast scoring, robustness."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax
from test_devices_and_checkpoints import block
from lrjax.transforms._window_search import PROBE, ROLLBACK, TRAIN, forecast


def quadratic(params):
  return 0.5 * jnp.sum(params ** 2)


def run(tx, params, steps, loss_fn=quadratic, record=False):
  state = tx.init(params)

  @jax.jit
  def step(params, state):
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, state = tx.update(grads, state, params, value=loss)
    return optax.apply_updates(params, updates), state, loss

  trace = []
  for _ in range(steps):
    if record:
      trace.append((params, state))
    params, state, _ = step(params, state)
  return params, state, trace


def test_probes_start_from_the_snapshot_and_roll_back_exactly():
  tx = lrjax.window_search(optax.sgd, 0.05, window=30, probe_steps=4, candidates=(0.5, 1.0, 2.0))
  p0 = jnp.array([1.0, -2.0, 0.5])
  _, state, trace = run(tx, p0, 13, record=True)
  # Updates 0-3 probe x0.5 (3 steps, then rollback), 4-7 x1.0, 8-11 x2.0, 12 trains.
  for k in (4, 8, 12):
    chex.assert_trees_all_close(trace[k][0], p0, rtol=0, atol=1e-7)
  phases = [int(s.phase) for _, s in trace[1:]] + [int(state.phase)]
  assert phases == [PROBE] * 3 + [ROLLBACK] + [PROBE] * 3 + [ROLLBACK] + [PROBE] * 3 + \
      [ROLLBACK, TRAIN]
  # Each probe saw the same first loss (at the snapshot) and SGD at its own rate after.
  losses = np.asarray(state.probe_losses)
  np.testing.assert_allclose(losses[:, 0], float(quadratic(p0)), rtol=1e-6)
  for i, m in enumerate((0.5, 1.0, 2.0)):
    want = float(quadratic(p0)) * (1 - 0.05 * m) ** (2 * np.arange(4))
    np.testing.assert_allclose(losses[i], want, rtol=1e-5)
  # Forecast scoring chose the largest multiple on this smooth quadratic.
  assert int(state.winner) == 2 and float(state.multiplier) == 2.0
  # The inner state was restored with the parameters (SGD without momentum: empty;
  # checked with momentum below).


def test_inner_state_rolls_back_with_the_parameters():
  tx = lrjax.window_search(lambda lr: optax.sgd(lr, momentum=0.9), 0.01, window=20,
                           probe_steps=3, candidates=(1.0, 2.0))
  p0 = jnp.array([1.0, -2.0])
  _, _, trace = run(tx, p0, 8, record=True)
  first = trace[1][1].inner_state  # one momentum step from the snapshot, at p0
  for k in (3, 6):  # after each rollback (updates 2 and 5) ...
    assert int(trace[k][1].phase) == ROLLBACK
    chex.assert_trees_all_close(trace[k][0], p0)
    # ... the next update starts from the snapshot's inner state: at p0 again, its momentum
    # is the first update's, not the probe's (which had accumulated two more steps).
    chex.assert_trees_all_close(trace[k + 1][1].inner_state, first)
    assert not np.allclose(np.asarray(trace[k][1].inner_state[0].trace),
                           np.asarray(first[0].trace))


def test_a_probe_with_non_finite_gradients_is_disqualified_and_rolled_back_exactly():
  """A NaN gradient at a finite loss: the probe's update entries are zeroed, so the parameters
  stay finite and the rollback exact; its momentum went NaN, so at its end it scores +inf."""
  tx = lrjax.window_search(lambda lr: optax.sgd(lr, momentum=0.9), 0.05, window=20,
                           probe_steps=3, candidates=(2.0, 1.0))
  params = p0 = jnp.array([1.0, -2.0])
  state = tx.init(params)
  step = jax.jit(lambda g, s, p, v: tx.update(g, s, p, value=v))
  for k in range(7):
    grads = params
    if k == 0:  # the first candidate (x2, the better one on this quadratic) sees NaN once
      grads = jnp.array([jnp.nan, 1.0])
    updates, state = step(grads, state, params, quadratic(params))
    params = optax.apply_updates(params, updates)
    assert np.all(np.isfinite(np.asarray(params)))
    if k in (2, 5):
      np.testing.assert_array_equal(np.asarray(params), np.asarray(p0))
  assert np.isinf(float(state.scores[0])) and int(state.winner) == 1
  assert int(state.num_nonfinite) == 1


def test_too_small_a_rate_grows_and_too_large_shrinks():
  def final_multiplier(base, windows=6):
    tx = lrjax.window_search(optax.sgd, base, window=40, probe_steps=5)
    _, state, _ = run(tx, jnp.ones(4), 40 * windows)
    return float(state.multiplier)

  assert final_multiplier(1e-3) == 2.0 ** 6
  # lr 1.9 is near the edge of stability (2 for this quadratic): halving wins. (In
  # later windows the loss is ~0 for every candidate and the choice is a tie.)
  assert final_multiplier(1.9, windows=1) == 0.5


def test_a_diverging_candidate_is_never_chosen_and_params_stay_finite():
  # lr 1.5 x 2 = 3 > 2 diverges on this quadratic; x 0.5 and x 1 converge.
  tx = lrjax.window_search(optax.sgd, 1.5, window=60, probe_steps=6, candidates=(2.0, 1.0, 0.5))
  params, state, _ = run(tx, jnp.ones(3) * 10, 60)
  assert int(state.winner) != 0
  assert np.all(np.isfinite(np.asarray(params)))


def test_nan_losses_in_a_probe_disqualify_it():
  def loss_fn(p):
    return quadratic(p)

  tx = lrjax.window_search(optax.sgd, 0.05, window=20, probe_steps=3, candidates=(1.0, 2.0))
  params = jnp.ones(2)
  state = tx.init(params)
  step = jax.jit(lambda p, s, v: tx.update(jax.grad(loss_fn)(p), s, p, value=v))
  for k in range(6):
    loss = float(loss_fn(params))
    if 3 <= k < 6:  # the second candidate's probe reports NaN
      loss = float("nan")
    updates, state = step(params, state, jnp.float32(loss))
    params = optax.apply_updates(params, updates)
  assert int(state.winner) == 0 and int(state.num_nonfinite) == 3


def test_forecast_recovers_an_exponential_curve():
  t = np.arange(20)
  rate = np.logspace(-0.5, np.log10(50.0), 96)[20] / 20  # a grid rate: exact fit
  rows = np.stack([1.0 + 2.0 * np.exp(-rate * t), 3.0 - 0.0 * t, 2.0 + 0.01 * t])
  got = np.asarray(forecast(jnp.asarray(rows, jnp.float32), 100.0))
  np.testing.assert_allclose(got[0], 1.0 + 2.0 * np.exp(-rate * 100), rtol=1e-4)
  np.testing.assert_allclose(got[1], 3.0, rtol=1e-5)
  assert got[2] > rows[2, -1]  # a rising loss forecasts higher, not lower
  bad = rows.copy()
  bad[1, 3] = np.nan
  assert np.isinf(np.asarray(forecast(jnp.asarray(bad, jnp.float32), 100.0))[1])


def test_state_is_stable_and_compiles_once():
  tx = lrjax.window_search(optax.adam, 1e-2, window=12, probe_steps=3)
  params = {"a": jnp.ones((2, 3)), "b": jnp.zeros(3, jnp.bfloat16)}
  state = tx.init(params)
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(params, state):
    grads = jax.tree.map(jnp.ones_like, params)
    updates, new = tx.update(grads, state, params, value=jnp.float32(1.0))
    return optax.apply_updates(params, updates), new

  for _ in range(30):
    new_params, new_state = step(params, state)
    chex.assert_trees_all_equal_shapes_and_dtypes(new_state, state)
    chex.assert_trees_all_equal_shapes_and_dtypes(new_params, params)
    params, state = new_params, new_state
  assert float(lrjax.current_lr(state)) > 0


def test_needs_params_and_value():
  tx = lrjax.window_search(optax.sgd, 0.1, window=10, probe_steps=3)
  state = tx.init(jnp.ones(2))
  with pytest.raises(ValueError, match="needs params"):
    tx.update(jnp.ones(2), state, value=1.0)
  with pytest.raises(TypeError):
    tx.update(jnp.ones(2), state, jnp.ones(2))


@pytest.mark.parametrize("kwargs,message", [
    (dict(window=10, probe_steps=4), "lrjax.window_search: window must be > len(candidates) * probe_steps = 12, got window=10"),
    (dict(probe_steps=2), "lrjax.window_search: probe_steps must be an integer >= 3, got probe_steps=2"),
    (dict(candidates=()), "lrjax.window_search: candidates must be a non-empty sequence"),
    (dict(candidates=(1.0, -2.0)), "lrjax.window_search: candidates must be finite and > 0"),
    (dict(window=100.5), "lrjax.window_search: window must be an integer >= 2"),
])
def test_bad_arguments(kwargs, message):
  with pytest.raises(ValueError) as info:
    lrjax.window_search(optax.sgd, 0.1, **kwargs)
  assert str(info.value).startswith(message), str(info.value)


def test_checkpoint_mid_window_resumes_bit_identically(tmp_path):
  ocp = pytest.importorskip("orbax.checkpoint")
  tx = lrjax.window_search(optax.adam, 1e-2, window=20, probe_steps=3)
  p0 = jnp.linspace(-1.0, 1.0, 6)
  straight, s_straight, _ = run(tx, p0, 50)
  half, s_half, _ = run(tx, p0, 25)  # inside the second window's probes
  ckpt = ocp.StandardCheckpointer()
  ckpt.save(tmp_path / "c", {"params": half, "state": s_half})
  ckpt.wait_until_finished()
  template = jax.tree.map(ocp.utils.to_shape_dtype_struct, {"params": p0, "state": tx.init(p0)})
  restored = ckpt.restore(tmp_path / "c", template)

  @jax.jit
  def step(params, state):
    loss, grads = jax.value_and_grad(quadratic)(params)
    updates, state = tx.update(grads, state, params, value=loss)
    return optax.apply_updates(params, updates), state

  params, state = restored["params"], restored["state"]
  for _ in range(25):
    params, state = step(params, state)
  chex.assert_trees_all_equal((params, state), (straight, s_straight))


def test_pmap_replicas_choose_alike():
  if jax.device_count() < 8:
    pytest.skip("needs 8 devices")
  tx = lrjax.window_search(optax.sgd, 0.05, window=20, probe_steps=3, axis_name="d")
  params = jnp.ones((8, 3)) * jnp.arange(1, 9)[:, None]
  state = jax.pmap(tx.init)(params)

  def step(params, state):
    loss, grads = jax.value_and_grad(quadratic)(params)
    grads = jax.lax.pmean(grads, "d")
    updates, state = tx.update(grads, state, params, value=loss)
    return optax.apply_updates(params, updates), state

  step = jax.pmap(step, axis_name="d")
  for _ in range(60):
    params, state = block(step(params, state))
  for leaf in (state.multiplier, state.winner, state.scores, state.count):
    leaf = np.asarray(leaf)
    np.testing.assert_array_equal(leaf, np.broadcast_to(leaf[0], leaf.shape))


@pytest.mark.parametrize("precision", ["tensorfloat32", "bfloat16"])
def test_forecast_decides_alike_whatever_the_default_matmul_precision(precision):
  """Statistics are full float32 on every backend (TF32 is NVIDIA's float32 matmul default)."""
  t = np.arange(8, dtype=np.float32)
  losses = jnp.asarray(np.stack([2.0 + 3.0 * np.exp(-0.3 * t), 2.1 + 2.5 * np.exp(-0.5 * t),
                                 1.9 + 3.5 * np.exp(-0.1 * t)]), jnp.float32)
  want = jax.jit(forecast)(losses, 40.0)
  with jax.default_matmul_precision(precision):
    got = jax.jit(forecast)(losses, 40.0)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  assert int(jnp.argmin(got)) == int(jnp.argmin(want))
  # The decision's one matmul asks for HIGHEST precision explicitly, whatever the context.
  with jax.default_matmul_precision(precision):
    hlo = jax.jit(forecast).lower(losses, 40.0).as_text()
  dots = [line for line in hlo.splitlines() if "dot_general" in line]
  assert dots and all("HIGHEST" in line for line in dots), dots
