"""The learned controller, its weights file and its meta-training.

The shared rules (NaN skipped and counted, saturating counters, float32 under
bf16 params, 8 devices, orbax resume, no retrace) run over it through
``stateful_cases.py``; here: its own arithmetic, bad input, the shipped
weights against their card, and meta-training lowering the meta-loss.
"""

import hashlib
import importlib.resources
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax
from lrjax import meta
from lrjax.transforms import _learned as L

CARD = pathlib.Path(__file__).resolve().parents[1] / "docs" / "learned_controller.md"


def _quadratic_run(tx, steps=60, scale=1.0):
  params = jnp.linspace(-1.0, 1.0, 6)
  state = tx.init(params)
  loss_fn = lambda p: scale * jnp.sum(p ** 2)  # noqa: E731

  @jax.jit
  def step(params, state):
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, state = tx.update(grads, state, params, value=loss)
    return optax.apply_updates(params, updates), state, loss

  losses, lrs = [], []
  for _ in range(steps):
    params, state, loss = step(params, state)
    losses.append(float(loss))
    lrs.append(float(lrjax.current_lr(state)))
  return np.asarray(losses), np.asarray(lrs), state


def _random_weights(seed=0, hidden=8):
  w = L.init_weights(jax.random.PRNGKey(seed), hidden, scale=0.5)
  w["w_out"] = 0.5 * jax.random.normal(jax.random.PRNGKey(seed + 1), (hidden,))
  w["b_out"] = jnp.float32(0.2)
  return w


def _numpy_gru(w, h, x):
  """The GRU step transcribed in NumPy (float64), from the formula in ``gru_step``."""
  w = {k: np.asarray(v, np.float64) for k, v in w.items()}
  n = h.shape[0]
  sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
  gx = x @ w["w_input"] + w["bias"]
  gh = h @ w["w_hidden"]
  z = sig(gx[:n] + gh[:n])
  r = sig(gx[n:2 * n] + gh[n:2 * n])
  cand = np.tanh(gx[2 * n:] + r * gh[2 * n:])
  new = (1 - z) * cand + z * h
  return new, L.MAX_LOG_STEP * np.tanh(new @ w["w_out"] + w["b_out"])


def test_gru_step_matches_its_formula():
  w = _random_weights()
  rng = np.random.default_rng(0)
  h = np.zeros(8)
  hj = jnp.zeros(8)
  for _ in range(5):
    x = rng.uniform(-3, 3, L.NUM_FEATURES)
    h, d = _numpy_gru(w, h, x)
    hj, dj = L.gru_step(w, hj, jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(np.asarray(hj), h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(dj), d, rtol=1e-5, atol=1e-7)
    assert abs(float(dj)) <= L.MAX_LOG_STEP


def test_rate_moves_by_the_gru_output_and_stays_in_bounds():
  w = _random_weights()
  tx = lrjax.learned_controller(optax.sgd, init_value=0.01, weights=w, min_value=5e-3,
                                max_value=0.05)
  _, lrs, state = _quadratic_run(tx, steps=40)
  steps = np.diff(np.log(np.concatenate([[0.01], lrs])))
  assert np.all(np.abs(steps) <= L.MAX_LOG_STEP + 1e-6)
  assert np.all((lrs >= 5e-3 * (1 - 1e-6)) & (lrs <= 0.05 * (1 + 1e-6)))
  assert len(set(np.round(lrs, 8))) > 3  # it does move
  assert state.inputs.shape == (L.NUM_FEATURES,)
  assert np.all(np.abs(np.asarray(state.inputs)) <= L.FEATURE_CLIP)


def test_first_decision_reads_the_documented_inputs():
  """Update 1 of SGD on sum(p^2): the statistics start at the first values."""
  params = jnp.asarray([3.0, 4.0])  # loss 25, grad (6, 8), |g|^2 = 100, |p|^2 = 25
  tx = lrjax.learned_controller(optax.sgd, init_value=0.1, weights=_random_weights(),
                                total_steps=10)
  state = tx.init(params)
  grads = 2 * params
  _, state = tx.update(grads, state, params, value=jnp.sum(params ** 2))
  x = dict(zip(L.FEATURES, np.asarray(state.inputs)))
  # Levels all start at the loss: no trend, no rise above the best, loss = level.
  for k in ("trend_fast", "trend_slow", "above_best", "loss_vs_level", "grad_norm"):
    assert x[k] == 0.0, k
  # No step seen yet: the update ratio is 0 (its neutral value), as are the gradient pair's.
  assert x["update_ratio"] == 0.0
  assert x["cosine"] == 0.0 and x["cosine_avg"] == 0.0 and x["noise"] == 0.0
  assert x["progress"] == 0.0 and x["has_horizon"] == 1.0 and x["log_multiplier"] == 0.0
  # Update 2 after the step -a (6, 8), a the rate of update 1: params (3, 4)(1 - 2a), so
  # |step| / |params| = 10 a / (5 (1 - 2a)); the gradient points the same way: cosine 1;
  # with c = 1 - 2a, |g|^2 = 100 c^2 and g.g_prev = 100 c, so the noise is
  # (100 + 100 c^2 - 200 c) / (100 + 100 c^2), smoothed from 0.5 with weight 0.1.
  a = float(state.lr)
  c = 1 - 2 * a
  params = optax.apply_updates(params, _)
  np.testing.assert_allclose(np.asarray(params), [3 * c, 4 * c], rtol=1e-6)
  _, state = tx.update(2 * params, state, params, value=jnp.sum(params ** 2))
  x = dict(zip(L.FEATURES, np.asarray(state.inputs)))
  np.testing.assert_allclose(x["update_ratio"], np.log10(10 * a / (5 * c)) + 3, rtol=1e-5)
  np.testing.assert_allclose(x["cosine"], 1.0, rtol=1e-6)
  np.testing.assert_allclose(x["cosine_avg"], 0.1, rtol=1e-6)
  np.testing.assert_allclose(x["noise"], 0.9 * 0.5 + 0.1 * (1 - c) ** 2 / (1 + c ** 2) - 0.5,
                             rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(x["grad_norm"], np.log(100 * c ** 2)
                             - np.log(0.9 * 100 + 0.1 * 100 * c ** 2), rtol=1e-5)
  np.testing.assert_allclose(x["progress"], 0.1, rtol=1e-6)


def test_the_sample_is_exact_for_small_trees_and_close_for_large_ones():
  """sample(x) . sample(y) = x . y up to SAMPLE_SIZE elements; a few % off beyond."""
  rng = np.random.default_rng(0)
  small = {"a": rng.normal(size=(30, 40)), "b": rng.normal(size=7)}
  other = {"a": rng.normal(size=(30, 40)), "b": rng.normal(size=7)}
  exact = sum(np.vdot(small[k], other[k]) for k in small)
  np.testing.assert_allclose(float(L.sample(small) @ L.sample(other)), exact, rtol=1e-5)
  # 2M coordinates in three leaves; y = 0.5 x + noise: cosine 0.447; the sample reads ~8k.
  big = {"w": rng.normal(size=(1000, 2000)), "b": np.ones(5000), "c": rng.normal(size=77)}
  noisy = {k: 0.5 * v + rng.normal(size=v.shape) for k, v in big.items()}
  dot = lambda a, b: sum(float(np.vdot(a[k], b[k])) for k in a)  # noqa: E731
  cosine = dot(big, noisy) / np.sqrt(dot(big, big) * dot(noisy, noisy))
  s, t = L.sample(big), L.sample(noisy)
  assert s.shape[0] < 1.01 * L.SAMPLE_SIZE + 3
  np.testing.assert_allclose(float(s @ t / jnp.sqrt((s @ s) * (t @ t))), cosine, atol=0.02)
  np.testing.assert_allclose(float(s @ s), dot(big, big), rtol=0.03)
  # A matrix is read in every column and every row, not in a few columns (its stride, about
  # 2M / 8k = 256, is moved off the row length's factors).
  strided = L.sample({"w": np.arange(1024 * 2048.0).reshape(1024, 2048)})
  index = (np.asarray(strided, np.float64) / np.sqrt(1024 * 2048 / strided.shape[0])).round()
  index = index.astype(np.int64)
  assert len(set(index % 2048)) == 2048 and len(set(index // 2048)) == 1024


def test_a_spike_caps_the_rate_below_the_one_that_spiked():
  """After the guard's cut the network may raise the rate again, but not past sqrt(cut)
  times the rate that spiked (a GRU that always raises, at +0.1 a step)."""
  up = {k: jnp.zeros_like(v) for k, v in _random_weights().items()}
  up["b_out"] = jnp.asarray(10.0)  # delta = 0.1 tanh(10): always up
  tx = lrjax.learned_controller(optax.sgd, init_value=0.1, weights=up)
  params = jnp.asarray([1.0, -1.0])
  state = tx.init(params)
  loss_fn = lambda p: 50 * jnp.sum(p ** 2)  # noqa: E731  SGD diverges above 0.02
  rates, spikes = [], []
  for _ in range(120):
    loss, grads = jax.value_and_grad(loss_fn)(params)
    before = float(state.lr)
    updates, state = tx.update(grads, state, params, value=loss)
    params = optax.apply_updates(params, updates)
    if int(state.guard.num_spikes) > len(spikes):
      spikes.append(before)
    rates.append(float(state.lr))
  assert spikes, "the guard never fired"
  np.testing.assert_allclose(float(state.guard.ceiling), min(spikes) * np.sqrt(0.1), rtol=1e-5)
  assert max(rates[rates.index(min(rates)):]) <= float(state.guard.ceiling) * (1 + 1e-6)
  assert np.isfinite(float(loss_fn(params))) and float(loss_fn(params)) < 100


def test_every_decides_only_on_multiples():
  tx = lrjax.learned_controller(optax.sgd, init_value=0.01, weights=_random_weights(), every=4)
  _, lrs, _ = _quadratic_run(tx, steps=16)
  changes = np.nonzero(np.diff(np.concatenate([[np.float32(0.01)], lrs])))[0] + 1  # 1-based
  assert set(changes) <= {4, 8, 12, 16} and len(changes) >= 2


def test_without_a_horizon_the_progress_inputs_are_zero():
  tx = lrjax.learned_controller(optax.sgd, init_value=0.01, weights=_random_weights())
  _, _, state = _quadratic_run(tx, steps=5)
  x = dict(zip(L.FEATURES, np.asarray(state.inputs)))
  assert x["progress"] == 0.0 and x["has_horizon"] == 0.0


def test_the_spike_guard_cuts_a_rate_far_too_high():
  """SGD on 50 p^2 diverges at rate 0.1 (stable below 0.02); the guard brings it back."""
  zero = {k: jnp.zeros_like(v) for k, v in _random_weights().items()}  # a constant rate
  bare = lrjax.learned_controller(optax.sgd, init_value=0.1, weights=zero, guard=False)
  guarded = lrjax.learned_controller(optax.sgd, init_value=0.1, weights=zero)
  loss_bare, _, _ = _quadratic_run(bare, steps=40, scale=50.0)
  loss_guarded, lrs, state = _quadratic_run(guarded, steps=40, scale=50.0)
  assert not loss_bare[-1] < loss_bare[0]
  assert loss_guarded[-1] < 1e-3 * loss_guarded[0]
  assert int(state.guard.num_spikes) >= 1 and lrs[-1] <= 0.01 + 1e-9


@pytest.mark.parametrize("kwargs,ramp", [
    (dict(total_steps=40), [1 / 4, 2 / 4, 3 / 4, 1, 1, 1]),  # a tenth of total_steps
    (dict(total_steps=40, warmup_steps=2), [1 / 2, 1, 1, 1, 1, 1]),
    (dict(total_steps=40, warmup_steps=0), [1] * 6),
    (dict(), [1] * 6),  # no horizon, no warmup
])
def test_the_warmup_ramps_the_applied_rate_outside_the_network(kwargs, ramp):
  """A network that never moves the rate: the update is -0.1 min(1, (t+1)/W) g, the
  network's own rate stays 0.1, and current_lr reads what was applied."""
  zero = {k: jnp.zeros_like(v) for k, v in _random_weights().items()}
  tx = lrjax.learned_controller(optax.sgd, init_value=0.1, weights=zero, **kwargs)
  params = jnp.asarray([1.0, -2.0])
  state = tx.init(params)
  for want in ramp:
    grads = 2 * params
    updates, state = tx.update(grads, state, params, value=jnp.sum(params ** 2))
    np.testing.assert_allclose(np.asarray(updates), -0.1 * want * np.asarray(grads), rtol=1e-6)
    np.testing.assert_allclose(float(lrjax.current_lr(state)), 0.1 * want, rtol=1e-6)
    assert float(state.rate) == np.float32(0.1)
    params = optax.apply_updates(params, updates)


def test_update_needs_the_loss_and_the_params():
  tx = lrjax.learned_controller(optax.sgd, init_value=0.01, weights=_random_weights())
  params = jnp.ones(2)
  state = tx.init(params)
  with pytest.raises(ValueError, match="learned_controller: update needs the loss"):
    tx.update(params, state, params)
  with pytest.raises(ValueError, match="learned_controller: update needs params"):
    tx.update(params, state, None, value=1.0)


@pytest.mark.parametrize("kwargs,message", [
    (dict(init_value=0.0), "init_value must be > 0"),
    (dict(init_value=0.1, every=0), "every must be an integer >= 1"),
    (dict(init_value=0.1, every=1.5), "every must be an integer >= 1"),
    (dict(init_value=0.1, min_value=0.0), "min_value must be > 0"),
    (dict(init_value=0.1, min_value=0.5, max_value=0.2), "max_value must be >= min_value"),
    (dict(init_value=20.0), "init_value must be in \\[min_value, max_value\\]"),
    (dict(init_value=0.1, total_steps=0), "total_steps must be an integer >= 1"),
    (dict(init_value=0.1, warmup_steps=-1), "warmup_steps must be an integer >= 0"),
    (dict(init_value=0.1, warmup_steps=2.5), "warmup_steps must be an integer >= 0"),
    (dict(init_value=0.1, warmup_steps=True), "warmup_steps must be an integer >= 0"),
    (dict(init_value=0.1, guard_skip="yes"), "guard_skip must be True or False"),
    (dict(init_value=0.1, guard_factor=1.0), "guard_factor must be > 1"),
    (dict(init_value=float("nan")), "init_value must be"),
    (dict(init_value=0.1, weights="/no/such/file.npz"), "weights file '/no/such/file.npz' does not"),
    (dict(init_value=0.1, weights=[1, 2]), "weights must be None, a path or a dict"),
])
def test_bad_arguments(kwargs, message):
  with pytest.raises(ValueError, match="lrjax.learned_controller: " + message):
    lrjax.learned_controller(optax.adam, **kwargs)


def test_bad_weights(tmp_path):
  w = {k: np.asarray(v) for k, v in _random_weights().items()}
  missing = dict(w)
  del missing["w_out"]
  with pytest.raises(ValueError, match="weights miss w_out"):
    lrjax.learned_controller(optax.adam, init_value=0.1, weights=missing)
  wrong = dict(w, bias=np.zeros(5, np.float32))
  with pytest.raises(ValueError, match=r"weights\['bias'\] must have shape \(24,\)"):
    lrjax.learned_controller(optax.adam, init_value=0.1, weights=wrong)
  nan = dict(w, b_out=np.float32(np.nan))
  with pytest.raises(ValueError, match=r"weights\['b_out'\] must be finite"):
    lrjax.learned_controller(optax.adam, init_value=0.1, weights=nan)
  other = dict(w, meta_features=np.asarray("a,b"))
  with pytest.raises(ValueError, match="trained on other inputs"):
    lrjax.learned_controller(optax.adam, init_value=0.1, weights=other)


def test_weights_round_trip_through_a_file(tmp_path):
  w = _random_weights()
  path = tmp_path / "w.npz"
  L.save_weights(path, w, seed=3)
  got = L.load_weights(str(path))
  for k in L.WEIGHT_KEYS:
    np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(w[k]))
  a = _quadratic_run(lrjax.learned_controller(optax.sgd, init_value=0.01, weights=w))[1]
  b = _quadratic_run(lrjax.learned_controller(optax.sgd, init_value=0.01,
                                              weights=str(path)))[1]
  np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# The shipped weights and their card.

def _card_section(name):
  text = CARD.read_text()
  start = text.index(f"<!-- {name} -->")
  return text[start:text.index(f"<!-- /{name} -->")]


def test_shipped_weights_are_the_ones_the_card_describes():
  data = importlib.resources.files("lrjax.weights").joinpath(L.SHIPPED).read_bytes()
  digest = hashlib.sha256(data).hexdigest()
  assert digest in _card_section("fingerprint"), "weights changed without their card"


def _card_decisions():
  """The card's table of (update, loss, cosine) -> log-rate change of the shipped weights."""
  rows = [line for line in _card_section("decisions").splitlines()
          if line.startswith("| ") and line[2].isdigit()]
  return [tuple(float(c) for c in row.strip("| ").split(" | ")) for row in rows]


def decision_inputs():
  """The fixed input sequence of the card's decision table: 12 updates, progress known."""
  seq = []
  for t in range(12):
    x = np.zeros(L.NUM_FEATURES, np.float32)
    x[L.FEATURES.index("trend_fast")] = -1.0 if t < 6 else 2.0  # falling, then rising
    x[L.FEATURES.index("cosine_avg")] = 0.5 if t < 6 else -0.3
    x[L.FEATURES.index("progress")] = t / 12
    x[L.FEATURES.index("has_horizon")] = 1.0
    seq.append(x)
  return seq


def shipped_decisions():
  w = L.load_weights()
  h = jnp.zeros(w["w_hidden"].shape[0])
  out = []
  for x in decision_inputs():
    h, d = L.gru_step(w, h, jnp.asarray(x))
    out.append(float(d))
  return out


def test_shipped_decisions_match_the_card():
  rows = _card_decisions()
  assert len(rows) == 12
  np.testing.assert_allclose(shipped_decisions(), [r[-1] for r in rows], atol=5e-5)


def test_shipped_weights_load_without_network_and_act():
  tx = lrjax.learned_controller(optax.adam, init_value=1e-2, total_steps=100)
  losses, lrs, state = _quadratic_run(tx, steps=100)
  assert losses[-1] < 0.1 * losses[0]
  assert int(state.num_nonfinite) == 0


# ---------------------------------------------------------------------------------------------
# Meta-training.

def test_a_few_es_iterations_lower_the_meta_loss_on_a_tiny_family():
  family = {"quadratic": meta.quadratic}
  val = meta.validation_draws(4, structures=("quadratic",))
  w0 = L.init_weights(jax.random.PRNGKey(0), 4)
  before = meta.evaluate(w0, val, family).mean()
  result = meta.meta_train(iterations=12, pairs=4, sigma=0.05, learning_rate=0.05,
                           hidden_size=4, lbfgs_steps=0, task_family=family,
                           validate_every=0, progress=False, init_weights=w0)
  after = meta.evaluate(result.weights, val, family).mean()
  assert np.isfinite(after) and after < before


def test_lbfgs_imitation_fits_the_hand_rule():
  family = {"linear": meta.linear}
  rng = np.random.default_rng(0)
  draws = [meta.dataclasses.replace(meta.draw(rng, ("linear",)), horizon=100)
           for _ in range(3)]
  xs, ds, masks = meta.imitation_data(draws, family, 4)
  _, history = meta.fit_by_lbfgs(L.init_weights(jax.random.PRNGKey(0), 4), xs, ds, masks,
                                 steps=30)
  assert history[-1] < 0.5 * history[0]


def test_meta_train_resumes_from_its_checkpoint_exactly(tmp_path):
  family = {"quadratic": meta.quadratic}
  kw = dict(pairs=2, hidden_size=4, lbfgs_steps=0, task_family=family, validate_every=0,
            progress=False)
  full = meta.meta_train(iterations=4, **kw)
  ck = str(tmp_path / "ck.npz")
  meta.meta_train(iterations=2, checkpoint=ck, checkpoint_every=1, **kw)
  resumed = meta.meta_train(iterations=4, checkpoint=ck, **kw)
  for k in L.WEIGHT_KEYS:
    np.testing.assert_array_equal(resumed.weights[k], full.weights[k])
  assert resumed.history == full.history


def test_diverged_inner_runs_get_the_worst_score_not_nan():
  w = {k: jnp.zeros_like(v) for k, v in L.init_weights(jax.random.PRNGKey(0), 4).items()}
  d = meta.Draw("quadratic", "sgdm", 0, 100, True, 1e3)
  loss = meta.evaluate(w, [d], {"quadratic": meta.quadratic}, )
  assert np.all(np.isfinite(loss)) and loss[0] > 0


@pytest.mark.parametrize("kwargs,message", [
    (dict(iterations=-1), "iterations must be an integer >= 0"),
    (dict(pairs=0), "pairs must be an integer >= 1"),
    (dict(sigma=0.0), "sigma must be a finite number > 0"),
    (dict(task_family=3), "task_family must be None, a task function or a dict"),
])
def test_meta_train_bad_arguments(kwargs, message):
  with pytest.raises(ValueError, match="lrjax.meta_train: " + message):
    meta.meta_train(**kwargs)
