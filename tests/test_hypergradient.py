"""Hypergradient descent against the paper's algorithm, on a quadratic and on noise."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax


def sgd_hd_reference(theta, grad_fn, alpha, beta, steps):
  """Baydin et al. 2018, Algorithm SGD-HD, transcribed in NumPy float64."""
  prev = np.zeros_like(theta)
  alphas = []
  for _ in range(steps):
    g = grad_fn(theta)
    alpha = alpha + beta * np.dot(g, prev)
    theta = theta - alpha * g
    prev = g
    alphas.append(alpha)
  return theta, np.array(alphas)


def adam_hd_reference(theta, grad_fn, alpha, beta, steps, b1=0.9, b2=0.999, eps=1e-8):
  """Adam-HD: h_t = g_t . u_{t-1}, u Adam's bias-corrected direction (negated)."""
  m = np.zeros_like(theta)
  v = np.zeros_like(theta)
  u_prev = np.zeros_like(theta)
  alphas = []
  for t in range(1, steps + 1):
    g = grad_fn(theta)
    alpha = alpha - beta * np.dot(g, u_prev)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    u = -(m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    theta = theta + alpha * u
    u_prev = u
    alphas.append(alpha)
  return theta, np.array(alphas)


A = np.diag([1.0, 3.0, 10.0])


def quad_grad(theta):
  return A @ theta


def _run(tx, theta0, steps):
  params = jnp.asarray(theta0, jnp.float32)
  state = tx.init(params)
  step = jax.jit(lambda p, s: tx.update(jnp.asarray(A, jnp.float32) @ p, s, p))
  alphas = []
  for _ in range(steps):
    updates, state = step(params, state)
    params = optax.apply_updates(params, updates)
    alphas.append(float(lrjax.current_lr(state)))
  return np.asarray(params), np.array(alphas), state


def test_sgd_hd_equals_the_paper_step_for_step():
  theta0 = np.array([1.0, -1.0, 0.5])
  want_theta, want_alpha = sgd_hd_reference(theta0, quad_grad, 0.01, 1e-3, 60)
  theta, alphas, _ = _run(lrjax.hypergradient(optax.sgd, init_value=0.01, hyper_lr=1e-3),
                          theta0, 60)
  np.testing.assert_allclose(alphas, want_alpha, rtol=1e-5)
  np.testing.assert_allclose(theta, want_theta, rtol=1e-4, atol=1e-6)


def test_adam_hd_equals_the_transcription():
  theta0 = np.array([1.0, -1.0, 0.5])
  want_theta, want_alpha = adam_hd_reference(theta0, quad_grad, 1e-2, 1e-3, 40)
  theta, alphas, _ = _run(lrjax.hypergradient(optax.adam, init_value=1e-2, hyper_lr=1e-3),
                          theta0, 40)
  np.testing.assert_allclose(alphas, want_alpha, rtol=1e-4)
  np.testing.assert_allclose(theta, want_theta, rtol=1e-3, atol=1e-5)


def test_too_small_alpha_grows_toward_the_stable_range():
  theta, alphas, _ = _run(lrjax.hypergradient(optax.sgd, init_value=1e-4, hyper_lr=1e-4),
                          np.array([1.0, 1.0, 1.0]), 300)
  assert alphas[-1] > 100 * alphas[0]
  assert alphas.max() < 2 / 10.0  # below the divergence edge of the stiffest direction
  assert np.abs(theta).max() < 1e-3  # and it converged


def test_multiplicative_rule_grows_by_at_most_beta_per_step():
  _, alphas, _ = _run(lrjax.hypergradient(optax.sgd, init_value=1e-3, hyper_lr=0.05,
                                          multiplicative=True), np.ones(3), 50)
  ratios = alphas[1:] / alphas[:-1]
  assert np.all(ratios <= 1.05 + 1e-6) and np.all(ratios >= 0.95 - 1e-6)
  assert alphas[-1] > alphas[0]


def test_noisy_problem_stays_bounded():
  rng = np.random.default_rng(0)
  tx = lrjax.hypergradient(optax.sgd, init_value=0.05, hyper_lr=1e-3)
  params = jnp.ones(3)
  state = tx.init(params)
  step = jax.jit(lambda p, s, n: tx.update(jnp.asarray(A, jnp.float32) @ p + n, s, p))
  alphas = []
  for _ in range(2000):
    noise = jnp.asarray(rng.standard_normal(3), jnp.float32)
    updates, state = step(params, state, noise)
    params = optax.apply_updates(params, updates)
    alphas.append(float(state.lr))
  alphas = np.array(alphas)
  assert np.all(np.isfinite(alphas)) and np.all(np.isfinite(np.asarray(params)))
  assert 0 <= alphas.min() and alphas.max() < 2 / 10.0  # below the stiffest direction's edge


def test_nonfinite_gradients_skip_the_alpha_update_and_clip_bounds():
  tx = lrjax.hypergradient(optax.sgd, init_value=0.1, hyper_lr=10.0, min_value=0.05,
                           max_value=0.2)
  params = jnp.ones(2)
  state = tx.init(params)
  # The finite check is h = g . u_{t-1} itself: at the first update u_0 = 0, and inf * 0 is
  # NaN, so an infinite element is caught there too.
  _, state = tx.update(jnp.array([1.0, jnp.inf]), state, params)
  assert float(state.lr) == pytest.approx(0.1) and int(state.num_nonfinite) == 1
  assert state.prev_direction.tolist() == [0.0, 0.0]
  _, state = tx.update(jnp.ones(2), state, params)
  _, state = tx.update(jnp.array([jnp.nan, 1.0]), state, params)
  assert float(state.lr) == pytest.approx(0.1) and int(state.num_nonfinite) == 2
  assert state.prev_direction.tolist() == [-1.0, -1.0]  # u_{t-1} kept, no NaN in it
  _, state = tx.update(jnp.ones(2), state, params)  # h = 1 . -1 = -2 -> alpha up, clipped
  assert float(state.lr) == pytest.approx(0.2)
  _, state = tx.update(-jnp.ones(2), state, params)  # h = -1 . -1 = 2 -> down, clipped
  assert float(state.lr) == pytest.approx(0.05)


@pytest.mark.parametrize("kwargs,message", [
    (dict(init_value=0.0, hyper_lr=1e-3), "lrjax.hypergradient: init_value must be > 0"),
    (dict(init_value=0.1, hyper_lr=-1.0), "lrjax.hypergradient: hyper_lr must be >= 0"),
    (dict(init_value=0.1, hyper_lr=1e-3, min_value=0.5, max_value=0.1),
     "lrjax.hypergradient: max_value must be >= min_value=0.5, got max_value=0.1"),
    (dict(init_value=float("nan"), hyper_lr=1e-3), "lrjax.hypergradient: init_value must be"),
    (dict(init_value=0.1, hyper_lr=1e-3, sample_size=0),
     "lrjax.hypergradient: sample_size must be"),
])
def test_bad_arguments(kwargs, message):
  with pytest.raises(ValueError) as info:
    lrjax.hypergradient(optax.sgd, **kwargs)
  assert str(info.value).startswith(message), str(info.value)


def test_sampled_hypergradient_is_exact_on_a_model_smaller_than_its_sample():
  theta0 = np.array([1.0, -1.0, 0.5])
  want_theta, want_alpha = adam_hd_reference(theta0, quad_grad, 1e-2, 1e-3, 40)
  theta, alphas, state = _run(lrjax.hypergradient(optax.adam, init_value=1e-2, hyper_lr=1e-3,
                                                  sample_size=8), theta0, 40)
  assert state.prev_direction.shape == (3,)
  np.testing.assert_allclose(alphas, want_alpha, rtol=1e-4)
  np.testing.assert_allclose(theta, want_theta, rtol=1e-3, atol=1e-5)
  # Smaller than its sample, the model is read whole: the exact run's numbers, bit for bit.
  exact = _run(lrjax.hypergradient(optax.adam, init_value=1e-2, hyper_lr=1e-3), theta0, 40)
  np.testing.assert_array_equal(theta, exact[0])
  np.testing.assert_array_equal(alphas, exact[1])


def test_sampled_hypergradient_reads_every_stride_th_coordinate_weighted():
  """h_t = (n / m) * sum over the sampled coordinates i of g_i u_i: the sample is every s-th
  coordinate (m of n), s = n // sample_size raised until it is prime to the leaf's last
  dimension (``sample``'s documented rule); with SGD u_{t-1} = -g_{t-1}. It estimates g.u."""
  n, k = 4096, 256
  rng = np.random.default_rng(0)
  g1 = rng.standard_normal(n)
  g2 = 0.5 * g1 + 0.3 * rng.standard_normal(n)
  tx = lrjax.hypergradient(optax.sgd, init_value=0.1, hyper_lr=1e-5, sample_size=k)
  params = jnp.zeros(n)
  state = tx.init(params)
  _, state = tx.update(jnp.asarray(g1, jnp.float32), state, params)
  _, state = tx.update(jnp.asarray(g2, jnp.float32), state, params)
  stride = n // k
  while math.gcd(stride, n) != 1:
    stride += 1
  idx = np.arange(0, n, stride)  # stride 17: 241 coordinates
  want = (n / idx.size) * np.sum(g2[idx] * -g1[idx])
  assert state.prev_direction.shape == (idx.size,)
  np.testing.assert_allclose(float(state.hypergradient), want, rtol=1e-5)
  np.testing.assert_allclose(float(state.lr), 0.1 - 1e-5 * want, rtol=1e-6)
  exact = np.dot(g2, -g1)  # about -2048
  assert abs(want - exact) < 0.1 * abs(exact), (want, exact)


@pytest.mark.parametrize("multiplicative", [False, True])
def test_replicas_fed_different_gradients_keep_one_alpha(multiplicative):
  """With axis_name, h (and the multiplicative rule's norms) are averaged over the replicas:
  each replica's own gradient, and one alpha for all of them."""
  n = jax.device_count()
  if n < 2:
    pytest.skip("needs several devices (XLA_FLAGS=--xla_force_host_platform_device_count=8)")
  tx = lrjax.hypergradient(optax.sgd, init_value=0.1, hyper_lr=0.05,
                           multiplicative=multiplicative, axis_name="d")
  rng = np.random.default_rng(0)
  grads = jnp.asarray(rng.standard_normal((4, n, 3)), jnp.float32)  # differ by replica
  params = jnp.zeros((n, 3))
  state = jax.pmap(tx.init)(params)
  step = jax.pmap(lambda g, s, p: tx.update(g, s, p)[1], axis_name="d")
  for t in range(4):
    state = step(grads[t], state, params)
  lr = np.asarray(state.lr)
  assert np.all(lr == lr[0]) and lr[0] != 0.1, lr
