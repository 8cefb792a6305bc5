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
from lrjax import _sampling as S
from lrjax import meta
from lrjax.transforms import _learned as L

CARD = pathlib.Path(__file__).resolve().parents[1] / "docs" / "learned_controller.md"


def _quadratic_run(tx, steps=60, scale=1.0, read_lr=True):
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
    lrs.append(float(lrjax.current_lr(state)) if read_lr else np.nan)
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
  assert x["estimate_growth"] == 0.0  # init_value given: a constant base
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


def test_the_step_it_reads_is_the_parameters_change():
  """The update-ratio input reads the step the parameters made, from its sample of them at
  the previous update: a transform chained after the controller (here a factor of 2) is
  part of it."""
  params = jnp.asarray([3.0, 4.0])
  tx = optax.chain(lrjax.learned_controller(optax.sgd, init_value=0.1,
                                            weights=_random_weights(), total_steps=10),
                   optax.scale(2.0))
  state = tx.init(params)
  updates, state = tx.update(2 * params, state, params, value=jnp.sum(params ** 2))
  a = float(state[0].lr)
  params = optax.apply_updates(params, updates)  # (3, 4)(1 - 4a): twice the controller's step
  np.testing.assert_allclose(np.asarray(params), [3 * (1 - 4 * a), 4 * (1 - 4 * a)], rtol=1e-6)
  _, state = tx.update(2 * params, state, params, value=jnp.sum(params ** 2))
  x = dict(zip(L.FEATURES, np.asarray(state[0].inputs)))
  np.testing.assert_allclose(x["update_ratio"], np.log10(20 * a / (5 * (1 - 4 * a))) + 3,
                             rtol=1e-5)


def test_the_sample_is_exact_for_small_trees_and_close_for_large_ones():
  """sample(x) . sample(y) = x . y up to SAMPLE_SIZE elements; a few % off beyond."""
  rng = np.random.default_rng(0)
  small = {"a": rng.normal(size=(30, 40)), "b": rng.normal(size=7)}
  other = {"a": rng.normal(size=(30, 40)), "b": rng.normal(size=7)}
  exact = sum(np.vdot(small[k], other[k]) for k in small)
  np.testing.assert_allclose(float(S.sample(small) @ S.sample(other)), exact, rtol=1e-5)
  # 2M coordinates in three leaves; y = 0.5 x + noise: cosine 0.447; the sample reads ~8k.
  big = {"w": rng.normal(size=(1000, 2000)), "b": np.ones(5000), "c": rng.normal(size=77)}
  noisy = {k: 0.5 * v + rng.normal(size=v.shape) for k, v in big.items()}
  dot = lambda a, b: sum(float(np.vdot(a[k], b[k])) for k in a)  # noqa: E731
  cosine = dot(big, noisy) / np.sqrt(dot(big, big) * dot(noisy, noisy))
  s, t = S.sample(big), S.sample(noisy)
  assert s.shape[0] < 1.01 * S.SAMPLE_SIZE + 3
  np.testing.assert_allclose(float(s @ t / jnp.sqrt((s @ s) * (t @ t))), cosine, atol=0.02)
  np.testing.assert_allclose(float(s @ s), dot(big, big), rtol=0.03)
  # A matrix is read in every column and every row, not in a few columns (its stride, about
  # 2M / 8k = 256, is moved off the row length's factors).
  strided = S.sample({"w": np.arange(1024 * 2048.0).reshape(1024, 2048)})
  index = (np.asarray(strided, np.float64) / np.sqrt(1024 * 2048 / strided.shape[0])).round()
  index = index.astype(np.int64)
  assert len(set(index % 2048)) == 2048 and len(set(index // 2048)) == 1024


def test_dots_sums_each_pair_as_dot_does_bit_for_bit():
  """``_sampling.dots`` (every inner product of an update in one pass) gives ``dot``'s float32
  sums bit for bit, so the controller's decisions did not move when it replaced them; a
  tuple-valued reduce, the other one-pass form, differs in the last bits (the test has
  teeth)."""
  rng = np.random.default_rng(3)
  vectors = [jnp.asarray(rng.normal(size=(5, n)) * 10.0 ** rng.uniform(-3, 3, (5, 1)),
                         jnp.float32) for n in (7, 4160, 10_001)]
  pairs = lambda v: [(v[0], v[0]), (v[1], v[2]), (v[3], v[4] - v[1])]  # noqa: E731
  together = jax.jit(lambda v: S.dots(pairs(v)))
  apart = jax.jit(lambda v: jnp.stack([S.dot(a, b) for a, b in pairs(v)]))
  tupled = jax.jit(lambda v: jnp.stack(jax.lax.reduce(
      tuple(a * b for a, b in pairs(v)), (jnp.float32(0),) * 3,
      lambda x, y: tuple(p + q for p, q in zip(x, y)), (0,))))
  differs = 0
  for v in vectors:
    np.testing.assert_array_equal(np.asarray(together(v)).view(np.int32),
                                  np.asarray(apart(v)).view(np.int32))
    differs += int(np.any(np.asarray(tupled(v)) != np.asarray(apart(v))))
  assert differs >= 1


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


def test_by_default_a_known_horizon_gets_about_DECISIONS_decisions():
  """``every=None``: every ``total_steps // DECISIONS`` updates (here 4 * DECISIONS updates: every
  4th), every update without a horizon or with one shorter than 2 * DECISIONS."""
  w = _random_weights()
  run = lambda **kw: _quadratic_run(lrjax.learned_controller(  # noqa: E731
      optax.sgd, init_value=0.01, weights=w, **kw), steps=12)[0]
  long = 4 * L.DECISIONS
  default = run(total_steps=long)
  np.testing.assert_array_equal(default, run(total_steps=long, every=4))
  assert not np.array_equal(default, run(total_steps=long, every=1))
  np.testing.assert_array_equal(run(total_steps=2 * L.DECISIONS - 1),
                                run(total_steps=2 * L.DECISIONS - 1, every=1))
  np.testing.assert_array_equal(run(), run(every=1))


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


def _shape(t, w, total):
  """The schedule's shape from its formula: min(1, (t+1)/W), times a cosine from 1 to 0 over
  [W, T] when the horizon T is known."""
  ramp = min(1.0, (t + 1) / w) if w else 1.0
  if total is None:
    return ramp
  return ramp * 0.5 * (1 + np.cos(np.pi * min(max(t - w, 0), total - w) / (total - w)))


@pytest.mark.parametrize("kwargs,warmup,total", [
    (dict(total_steps=40), 2, 40),  # a twentieth of total_steps
    (dict(total_steps=40, warmup_steps=2), 2, 40),
    (dict(total_steps=40, warmup_steps=0), 0, 40),
    (dict(total_steps=40, anneal=False), 2, None),  # the warmup only
    (dict(total_steps=12, warmup_steps=3), 3, 12),  # past the horizon: 0
    (dict(), 0, None),  # no horizon: no warmup, no anneal
])
def test_the_schedule_shapes_the_applied_rate_outside_the_network(kwargs, warmup, total):
  """A network that never moves the rate: the update is -0.1 s_t g with s_t the warmup
  ramp times the cosine anneal, the network's own rate stays 0.1, and current_lr reads what
  was applied."""
  zero = {k: jnp.zeros_like(v) for k, v in _random_weights().items()}
  tx = lrjax.learned_controller(optax.sgd, init_value=0.1, weights=zero, **kwargs)
  params = jnp.asarray([1.0, -2.0])
  state = tx.init(params)
  for t in range(14):
    want = _shape(t, warmup, total)
    grads = 2 * params
    updates, state = tx.update(grads, state, params, value=jnp.sum(params ** 2))
    np.testing.assert_allclose(np.asarray(updates), -0.1 * want * np.asarray(grads), rtol=2e-6,
                               atol=1e-12)
    np.testing.assert_allclose(float(lrjax.current_lr(state)), 0.1 * want, rtol=2e-6,
                               atol=1e-12)
    assert float(state.rate) == np.float32(0.1)
    params = optax.apply_updates(params, updates)


def _numpy_prodigy_controller(x, steps, d0=1e-6, beta3=0.999 ** 0.5, d_coef=1.0):
  """Sign descent on |x|^2 / 2 (g = x) at the rate d_t (a network that never moves it, no
  horizon), d_t Prodigy's estimate transcribed in NumPy (float64 sums) from Mishchenko & Defazio
  (2023), Algorithm 4 / optax.contrib.prodigy: each update k weighted by
  lambda_k = (d_k / d_0) * d_k * bc_k, bc_k = sqrt(1 - 0.999^(k+1)) / (1 - 0.9^(k+1)),
  r_t = sum_k beta3^(t-k) lambda_k <g_k, x_0 - x_k>, s_t = sum_k beta3^(t-k) lambda_k g_k,
  d_{t+1} = max(d_t, d_coef r_t / |s_t|_1)."""
  x = np.asarray(x, np.float32)  # float32 parameters, as the model's: the estimate reads
  x0, d, r, s = x.copy(), d0, 0.0, np.zeros(x.shape)  # their float32 differences x_0 - x_k
  estimates, rates = [], []
  for k in range(steps):
    g = x.astype(np.float64)
    rates.append(d)
    estimates.append(d)
    lam = (d / d0) * d * np.sqrt(1 - 0.999 ** (k + 1)) / (1 - 0.9 ** (k + 1))
    r = beta3 * r + lam * (g @ (x0 - x).astype(np.float64))
    s = beta3 * s + lam * g
    d = max(d, d_coef * r / np.abs(s).sum())
    x = (x - np.float32(rates[-1]) * np.sign(x)).astype(np.float32)
  return np.asarray(estimates), np.asarray(rates)


def test_without_init_value_the_rate_is_prodigys_estimate():
  """No init_value: the base is Prodigy's estimate of d; a network that never moves the rate
  applies it as it is, here to sign descent (an Adam-like direction without a state), as NumPy
  computes it."""
  zero = {k: jnp.zeros_like(v) for k, v in _random_weights().items()}
  tx = lrjax.learned_controller(optax.sign_sgd, weights=zero, guard=False)
  x = np.linspace(-1.0, 1.0, 6)
  want_d, want_lr = _numpy_prodigy_controller(x, 40)
  losses, lrs, state = _quadratic_run(tx, steps=40, scale=0.5)
  np.testing.assert_allclose(lrs, want_lr, rtol=2e-4)
  assert want_d[-1] > 1e3 * want_d[0]  # it grew: the test is not of a constant
  np.testing.assert_allclose(float(state.estimate), want_d[-1], rtol=2e-4)
  # Prodigy's d_coef multiplies the estimate's ratio (the run moves with it: not a constant).
  tx = lrjax.learned_controller(optax.sign_sgd, weights=zero, guard=False, d_coef=2.0)
  want_d2, want_lr2 = _numpy_prodigy_controller(x, 40, d_coef=2.0)
  np.testing.assert_allclose(_quadratic_run(tx, steps=40, scale=0.5)[1], want_lr2, rtol=2e-4)
  assert want_d2[-1] > 1.5 * want_d[-1]


def test_with_adam_and_the_network_off_it_is_prodigy_under_the_schedule():
  """Adam inside, no rate given, a zero network: the run follows optax.contrib.prodigy under
  the same warmup-cosine multiplier (its Adam moments average d g, which the controller
  reproduces by feeding the inner optimizer (d / d_0) g). Without weight decay they differ
  only in where Adam's eps sits (Prodigy: d eps against |d g|; here eps against
  |(d / d_0) g|); Prodigy's decoupled decay is also scaled by Adam's bias correction, AdamW's
  is not."""
  zero = {k: jnp.zeros_like(v) for k, v in _random_weights().items()}
  steps, warmup = 60, 3
  tx = lrjax.learned_controller(optax.adam, weights=zero,
                                total_steps=steps, guard=False)
  def multiplier(count):
    return L.shape(count, warmup, steps, True)
  ref = optax.contrib.prodigy(multiplier)
  ours = _quadratic_run(tx, steps=steps)
  theirs = _quadratic_run(ref, steps=steps, read_lr=False)
  np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-4)
  np.testing.assert_allclose(float(ours[2].estimate), float(theirs[2].estim_lr), rtol=1e-4)
  assert float(ours[2].estimate) > 1e3 * L.ESTIMATE_INIT


@pytest.mark.parametrize("kwargs,bound", [
    (dict(max_multiplier=1e9), None),  # no bound
    (dict(total_steps=1000), None),  # a horizon: no bound by default
    (dict(), L.NO_HORIZON_MAX_MULTIPLIER),  # no horizon: 1.5 by default
    (dict(total_steps=1000, max_multiplier=2.5), 2.5),
])
def test_the_estimate_is_start_invariant_and_the_network_scales_it(kwargs, bound):
  """Without init_value the run does not depend on a starting rate; a network that always
  raises multiplies the estimate by exp(0.1) a decision, up to max_value and up to
  ``max_multiplier`` times the estimate."""
  up = {k: jnp.zeros_like(v) for k, v in _random_weights().items()}
  up["b_out"] = jnp.asarray(10.0)  # delta = 0.1 tanh(10)
  tx = lrjax.learned_controller(optax.adam, weights=up, guard=False, max_value=1.0, every=1,
                                **kwargs)
  _, lrs, state = _quadratic_run(tx, steps=20)
  multiplier = np.exp(np.arange(1, 21) * 0.1 * np.tanh(10.0))  # 7.4 at the end
  if bound is not None:
    multiplier = np.minimum(multiplier, bound)
  # The rate of update t is the estimate of update t times the multiplier.
  np.testing.assert_allclose(float(state.rate), min(1.0, float(state.estimate) * multiplier[-1]),
                             rtol=1e-5)
  assert float(state.estimate) > 1e-6


def test_sample_weights_estimate_the_l1_norm():
  rng = np.random.default_rng(1)
  small = {"a": rng.normal(size=(30, 40)), "b": rng.normal(size=7)}
  l1 = sum(np.abs(v).sum() for v in small.values())
  np.testing.assert_allclose(float(np.abs(S.sample(small)) @ S.sample_weights(small)), l1,
                             rtol=1e-5)
  big = {"w": rng.normal(size=(1000, 2000)), "b": np.ones(5000)}
  l1 = sum(np.abs(v).sum() for v in big.values())
  np.testing.assert_allclose(float(np.abs(S.sample(big)) @ S.sample_weights(big)), l1,
                             rtol=0.03)
  assert S.sample_weights(big).shape == S.sample(big).shape


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
    (dict(init_value=0.1, anneal=1), "anneal must be True or False"),
    (dict(min_value=1e-5), "without init_value the rate starts at 1e-06, which must be in"),
    (dict(init_value=0.1, guard_factor=1.0), "guard_factor must be > 1"),
    (dict(init_value=float("nan")), "init_value must be"),
    (dict(init_value=0.1, weights="/no/such/file.npz"), "weights file '/no/such/file.npz' does not"),
    (dict(init_value=0.1, weights=[1, 2]), "weights must be None, a path or a dict"),
    (dict(d_coef=0.0), "d_coef must be > 0"),
    (dict(init_value=0.1, d_coef=2.0), "d_coef scales the estimate, which init_value replaces"),
    (dict(max_multiplier=0.5), "max_multiplier must be >= 1"),
    (dict(max_multiplier=float("inf")), "max_multiplier must be finite"),
    (dict(init_value=0.1, max_multiplier=2.0),
     "max_multiplier bounds the rate over the estimate, which init_value replaces"),
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


@pytest.mark.parametrize("init_value", [None, 0.1])
def test_shipped_weights_load_without_network_and_act(init_value):
  tx = lrjax.learned_controller(optax.adam, init_value=init_value, total_steps=100)
  losses, lrs, state = _quadratic_run(tx, steps=100)
  assert losses[-1] < 0.1 * losses[0]
  assert int(state.num_nonfinite) == 0


# ---------------------------------------------------------------------------------------------
# Meta-training.

def test_a_few_es_iterations_lower_the_meta_loss_on_a_tiny_family():
  family = {"quadratic": meta.quadratic}
  horizons = (30, 150)  # short runs (the default's 100-2,000 cost 20 s here)
  val = meta.validation_draws(4, structures=("quadratic",), horizons=horizons)
  assert all(30 <= d.horizon <= 150 for d in val)
  w0 = L.init_weights(jax.random.PRNGKey(0), 4)
  w0["b_out"] = jnp.float32(-1.0)  # a network that lowers the rate at every decision
  before = meta.evaluate(w0, val, family).mean()
  result = meta.meta_train(iterations=12, pairs=4, sigma=0.05, learning_rate=0.05,
                           hidden_size=4, lbfgs_steps=0, task_family=family,
                           validate_every=0, progress=False, init_weights=w0,
                           horizons=horizons)
  after = meta.evaluate(result.weights, val, family).mean()
  assert np.isfinite(after) and after < before


@pytest.mark.parametrize("decisions,divisor", [(None, None), (8, None), (None, 4)])
def test_the_meta_loss_judges_the_end_of_the_run(decisions, divisor):
  """The meta-loss of one draw is the formula on its own run: half the log of the mean loss
  of the last tenth of the updates over L_0, half the log of the final held-out loss over
  L_0 (L_0 the held-out loss at initialisation), each clipped; replayed here update by update
  with the controller the meta-objective builds (with ``decisions=8`` over 40 updates, the
  network deciding every 5th; with ``warmup_divisor=4``, a warmup over 10 updates instead of
  the shipped weights' 4)."""
  horizon, seed = 40, 3
  w = _random_weights(hidden=4)
  d = meta.Draw("linear", "adamw", seed, horizon, True, 0.03)
  divided = {} if divisor is None else {"warmup_divisor": divisor}
  got = float(meta.evaluate(w, [d], {"linear": meta.linear}, decisions=decisions,
                            **divided)[0])
  init_key, data_key = jax.random.split(jax.random.PRNGKey(seed))
  params, loss_fn = meta.linear(init_key)
  held = lambda p: np.mean([float(loss_fn(p, jax.random.fold_in(data_key, 10**7 + i)))  # noqa
                            for i in range(meta.HELD_OUT_BATCHES)])
  l0 = held(params)
  tx = lrjax.learned_controller(meta.base_optimizer("adamw"), init_value=0.03, weights=w,
                                total_steps=horizon,
                                warmup_steps=horizon // (divisor or meta.TRAIN_WARMUP_DIVISOR),
                                every=1 if decisions is None else horizon // decisions)

  @jax.jit  # one compiled update, called from a host loop of `horizon` updates
  def step(params, state, t):
    loss, grads = jax.value_and_grad(loss_fn)(params, jax.random.fold_in(data_key, t))
    updates, state = tx.update(grads, state, params, value=loss)
    return optax.apply_updates(params, updates), state, loss

  state, losses = tx.init(params), []
  for t in range(horizon):
    params, state, loss = step(params, state, t)
    losses.append(float(loss))
  clip = lambda r: min(max(r, meta.LOG_FLOOR), meta.LOG_CAP)  # noqa: E731
  expected = (0.5 * clip(np.log(np.mean(losses[-(horizon // 10):]) / l0))
              + 0.5 * clip(np.log(held(params) / l0)))
  assert got == pytest.approx(expected, rel=2e-4, abs=2e-4)


def _adam_final_and_first_loss(structure, lrs):
  """Adam at each of ``lrs`` for 300 updates on the instance of ``structure`` from key 0: the
  mean loss of the last 30 updates and the first loss, per rate."""
  params, loss_fn = structure(jax.random.PRNGKey(0))

  @jax.jit
  @jax.vmap
  def final_loss(lr):
    tx = optax.adam(lr)

    def body(carry, t):
      p, s = carry
      loss, g = jax.value_and_grad(loss_fn)(p, jax.random.PRNGKey(t))
      u, s = tx.update(g, s, p)
      return (optax.apply_updates(p, u), s), loss
    _, losses = jax.lax.scan(body, (params, tx.init(params)), jnp.arange(300))
    return losses[-30:].mean(), losses[0]

  return final_loss(jnp.asarray(lrs))


def test_memorise_draws_share_one_structure_and_reward_the_right_rate():
  """Every ``memorise`` draw has the same parameter shapes (one compiled program for the
  family); Adam at a well-chosen rate drives its training loss far below a tenth of that
  rate's (what makes the end of a run sensitive to the rate, as on a small real data set)."""
  shapes = {jax.tree.map(jnp.shape, meta.memorise(jax.random.PRNGKey(i))[0]).__repr__()
            for i in range(3)}
  assert len(shapes) == 1
  final, first = _adam_final_and_first_loss(meta.memorise, [1e-3, 1e-2])
  assert final[1] < 0.2 * first[1] and final[1] < 0.5 * final[0], (final, first)


def test_deep_is_outside_the_shipped_family_and_rewards_the_right_rate():
  """``deep`` (written after the shipped weights) is among ``STRUCTURES`` but not ``FAMILY``,
  so the default ``lrjax meta-train`` keeps the shipped weights' recipe; its draws share one
  program, its labels are two balanced classes, and Adam at a well-chosen rate drives its
  training loss far below its start and below a tenth of that rate's (a deep network that
  memorises a small, nearly separable set)."""
  assert "deep" in meta.STRUCTURES and "deep" not in meta.FAMILY
  assert {k: meta.STRUCTURES[k] for k in meta.FAMILY} == meta.FAMILY
  shapes = {jax.tree.map(jnp.shape, meta.deep(jax.random.PRNGKey(i))[0]).__repr__()
            for i in range(3)}
  assert len(shapes) == 1
  params, _ = meta.deep(jax.random.PRNGKey(0))
  assert len([k for k in params if k.startswith("w")]) == 6  # 5 hidden layers and the output
  final, first = _adam_final_and_first_loss(meta.deep, [3e-4, 3e-3])
  assert final[1] < 0.05 * first[1] and final[1] < 0.5 * final[0], (final, first)


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
  # The settings of the ES test above: its compiled programs serve this one.
  kw = dict(pairs=4, hidden_size=4, lbfgs_steps=0, task_family=family, validate_every=0,
            progress=False, horizons=(30, 150))
  full = meta.meta_train(iterations=4, **kw)
  ck = str(tmp_path / "ck.npz")
  meta.meta_train(iterations=2, checkpoint=ck, checkpoint_every=1, **kw)
  resumed = meta.meta_train(iterations=4, checkpoint=ck, **kw)
  for k in L.WEIGHT_KEYS:
    np.testing.assert_array_equal(resumed.weights[k], full.weights[k])
  assert resumed.history == full.history
  # A checkpoint of another layout (the hand-written one of earlier versions) is refused by name.
  old = str(tmp_path / "old.npz")
  np.savez(old, theta=np.zeros(3), iteration=2)
  with pytest.raises(ValueError, match="lrjax.meta_train: checkpoint .* was written for another"):
    meta.meta_train(iterations=4, checkpoint=old, **kw)


def test_es_update_is_the_antithetic_estimate_on_centered_ranks():
  """One ES step, transcribed: the population theta +- sigma eps (+ half first), centered ranks
  u in [-1/2, 1/2] of the losses, g = sum_i (u+_i - u-_i) eps_i / (2 P sigma); plain SGD at
  rate 1 moves theta by -g. The best validation point is the first of equals."""
  rng = np.random.default_rng(0)
  theta, eps, sigma = rng.normal(size=5).astype(np.float32), rng.normal(size=(3, 5)), 0.1
  state = meta.es_init(theta, optax.sgd(1.0))
  population = meta.es_population(state, eps, sigma)
  np.testing.assert_allclose(population, np.concatenate([theta + sigma * eps,
                                                          theta - sigma * eps]))
  losses = np.array([3.0, 1.0, 5.0, 2.0, 6.0, 4.0])  # ranks 2, 0, 4, 1, 5, 3 of 0..5
  u = np.array([2, 0, 4, 1, 5, 3]) / 5 - 0.5
  g = (u[:3] - u[3:]) @ eps / (2 * 3 * sigma)
  new = meta.es_update(state, eps, losses, sigma, optax.sgd(1.0))
  np.testing.assert_allclose(new.theta, theta - g, rtol=1e-6)
  assert int(new.iteration) == 1
  assert meta.es_validated(new, 0.5).best_iteration == 1
  kept = meta.es_validated(meta.es_validated(state, 0.5), 0.5)
  assert int(kept.best_iteration) == 0 and float(kept.best_loss) == 0.5


def test_diverged_inner_runs_get_the_worst_score_not_nan():
  """A task whose loss turns infinite after the first step: the mean loss of the last tenth of
  the updates and the final held-out loss count as LOG_CAP, so the meta-loss is finite and
  above 0 (a rate that kept the loss at its start would score 0)."""
  def blows_up(key):
    def loss_fn(p, data_key):
      moved = jnp.sum(jnp.abs(p)) > 1e-3
      return jnp.sum((p - 1.0) ** 2) * jnp.where(moved, jnp.inf, 1.0)
    return jnp.zeros(2), loss_fn
  w = {k: jnp.zeros_like(v) for k, v in L.init_weights(jax.random.PRNGKey(0), 4).items()}
  for estimate in (False, True):
    d = meta.Draw("boom", "adamw", 0, 100, True, 0.1, estimate=estimate)
    loss = meta.evaluate(w, [d], {"boom": blows_up})
    assert np.all(np.isfinite(loss)) and loss[0] > 0.5 * meta.LOG_CAP, (estimate, loss)


@pytest.mark.parametrize("kwargs,message", [
    (dict(iterations=-1), "iterations must be an integer >= 0"),
    (dict(pairs=0), "pairs must be an integer >= 1"),
    (dict(sigma=0.0), "sigma must be a finite number > 0"),
    (dict(task_family=3), "task_family must be None, a task function or a dict"),
    (dict(decisions=0), "decisions must be an integer >= 1"),
    (dict(horizons=(50, 20)), "horizons must be a tuple of two integers"),
    (dict(horizons=(0, 20)), "horizons must be a tuple of two integers"),
    (dict(warmup_divisor=0), "warmup_divisor must be an integer >= 1"),
])
def test_meta_train_bad_arguments(kwargs, message):
  with pytest.raises(ValueError, match="lrjax.meta_train: " + message):
    meta.meta_train(**kwargs)


def test_cli_meta_train_passes_its_settings_and_refuses_bad_ones(tmp_path, capsys, monkeypatch):
  """``lrjax meta-train`` in process, its training replaced by a stand-in that records what it
  was given: ``--decisions`` reaches ``meta_train`` and the file's metadata (only when given);
  bad arguments are one-line errors (exit 2)."""
  from conftest import run_cli
  seen = []
  zero = {k: np.zeros_like(v) for k, v in L.init_weights(jax.random.PRNGKey(0), 16).items()}

  def stand_in(**kwargs):
    seen.append(kwargs)
    return meta.MetaTrainResult(weights=zero, history=[], lbfgs_history=[], validation=[],
                                wall_time=0.0, iterations=kwargs["iterations"],
                                final_weights=zero, best_iteration=0)
  monkeypatch.setattr(meta, "meta_train", stand_in)
  out, plain = str(tmp_path / "w.npz"), str(tmp_path / "plain.npz")
  r = run_cli(capsys, "meta-train", "--out", out, "--iterations", "3", "--decisions", "300",
              "--quiet")
  assert r.returncode == 0, r.stderr
  assert seen[-1]["decisions"] == 300 and seen[-1]["iterations"] == 3
  assert len(seen[-1]["validation"]) == 12  # the default's draws
  with np.load(out) as f:
    assert int(f["meta_decisions"]) == 300 and int(f["meta_iterations"]) == 3
    assert "meta_validation_draws" not in f.files
  assert seen[-1]["horizons"] == (100, 2000)
  r = run_cli(capsys, "meta-train", "--out", out, "--validation-draws", "20", "--quiet",
              "--horizons", "50,5000")
  assert r.returncode == 0, r.stderr
  assert seen[-1]["horizons"] == (50, 5000)
  assert all(50 <= d.horizon <= 5000 for d in seen[-1]["validation"])
  assert [d.seed for d in seen[-1]["validation"][:12]] == [d.seed for d in meta.validation_draws()]
  assert len(seen[-1]["validation"]) == 20
  with np.load(out) as f:
    assert int(f["meta_validation_draws"]) == 20 and str(f["meta_horizons"]) == "50,5000"
  assert set(L.load_weights(out)) == set(L.WEIGHT_KEYS)
  assert run_cli(capsys, "meta-train", "--out", plain, "--quiet").returncode == 0
  assert seen[-1]["decisions"] is None
  assert seen[-1]["task_family"] == meta.FAMILY  # the shipped weights' family, in its order
  assert list(seen[-1]["task_family"]) == list(meta.FAMILY)
  assert seen[-1]["warmup_divisor"] == meta.TRAIN_WARMUP_DIVISOR
  with np.load(plain) as f:
    assert "meta_decisions" not in f.files
    assert "meta_structures" not in f.files and "meta_warmup_divisor" not in f.files
  r = run_cli(capsys, "meta-train", "--out", out, "--quiet", "--structures", "linear,deep",
              "--warmup-divisor", "20")
  assert r.returncode == 0, r.stderr
  assert list(seen[-1]["task_family"]) == ["linear", "deep"]
  assert seen[-1]["task_family"]["deep"] is meta.deep and seen[-1]["warmup_divisor"] == 20
  assert {d.structure for d in seen[-1]["validation"]} <= {"linear", "deep"}
  with np.load(out) as f:
    assert str(f["meta_structures"]) == "linear,deep" and int(f["meta_warmup_divisor"]) == 20
  for args, match in [(("--decisions", "0"), "--decisions"),
                      (("--validation-draws", "0"), "--validation-draws"),
                      (("--horizons", "5,2"), "--horizons"),
                      (("--structures", "linear,bogus"), "--structures"),
                      (("--structures", "linear,linear"), "--structures"),
                      (("--warmup-divisor", "0"), "--warmup-divisor"),
                      (("--out", str(tmp_path / "w.txt")), "must name an .npz file"),
                      (("--out", str(tmp_path / "no" / "w.npz")), "no writable folder")]:
    r = run_cli(capsys, "meta-train", "--quiet", *args)
    assert r.returncode == 2 and match in r.stderr, (args, r.stderr)


def test_reset_hidden_starts_every_decision_from_a_zero_memory():
  """The ablation's public switch: each decision's memory is the GRU step (transcribed in
  NumPy) from zeros on that decision's inputs; without it the memory carries over."""
  w = _random_weights(hidden=4)
  params = jnp.linspace(-1.0, 1.0, 6)
  for reset in (True, False):
    tx = lrjax.learned_controller(optax.sgd, init_value=0.01, weights=w, reset_hidden=reset)
    state, update = tx.init(params), jax.jit(tx.update)
    for t in range(4):
      grads = 2 * params * (1 + 0.1 * t)
      before = np.asarray(state.hidden)
      _, state = update(grads, state, params, value=jnp.sum(params ** 2) * (1 + 0.1 * t))
    h_zero = _numpy_gru(w, np.zeros(4), np.asarray(state.inputs, np.float64))[0]
    h_carry = _numpy_gru(w, before, np.asarray(state.inputs, np.float64))[0]
    want = h_zero if reset else h_carry
    np.testing.assert_allclose(np.asarray(state.hidden), want, rtol=1e-5, atol=1e-6)
  assert np.abs(h_zero - h_carry).max() > 1e-3  # the two differ: the test has teeth
  with pytest.raises(ValueError, match="learned_controller: reset_hidden must be True or False"):
    lrjax.learned_controller(optax.sgd, reset_hidden=1)
