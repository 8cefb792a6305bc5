"""The learning-rate range test."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax
from lrjax.finder import _valley


def _problem(n=60, seed=0):
  xs = jax.random.normal(jax.random.PRNGKey(seed), (n, 16, 3))
  ys = xs @ jnp.array([1.0, -2.0, 0.5])
  return (xs, ys), (lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2))


def test_sweep_values_follow_their_definitions():
  batches, loss = _problem()
  r = lrjax.find_lr(loss, jnp.zeros(3), batches, optimizer=optax.sgd, min_lr=1e-4,
                    max_lr=10.0, num_steps=60, smoothing=0.9)
  np.testing.assert_allclose(r.lrs, 1e-4 * (1e5) ** (np.arange(60) / 59), rtol=1e-12)
  # Debiased EMA of the losses, and the stop rule, transcribed.
  avg = 0.0
  for i, l in enumerate(r.losses):
    if np.isnan(l):
      break
    avg = 0.9 * avg + 0.1 * l
    s = avg / (1 - 0.9 ** (i + 1))
    np.testing.assert_allclose(r.smoothed_losses[i], s, rtol=1e-5)
  assert r.stopped_at is not None
  assert np.all(np.isnan(r.losses[r.stopped_at:])) and np.all(np.isfinite(r.losses[:r.stopped_at]))
  prefix = r.smoothed_losses[:r.stopped_at]
  assert np.all(prefix <= 4 * np.minimum.accumulate(prefix) + 1e-6)
  # The first loss is the loss at the starting parameters.
  assert r.losses[0] == pytest.approx(float(loss(jnp.zeros(3), (batches[0][0], batches[1][0]))),
                                      rel=1e-5)


def test_linear_mode_and_iterable_batches_match_the_scan():
  batches, loss = _problem(30)
  kw = dict(optimizer=optax.sgd, min_lr=1e-3, max_lr=0.5, num_steps=30, mode="linear")
  scanned = lrjax.find_lr(loss, jnp.zeros(3), batches, **kw)
  np.testing.assert_allclose(scanned.lrs, np.linspace(1e-3, 0.5, 30))
  listed = [(batches[0][i], batches[1][i]) for i in range(30)]
  looped = lrjax.find_lr(loss, jnp.zeros(3), listed, **kw)
  np.testing.assert_allclose(looped.losses, scanned.losses, rtol=1e-5)
  generated = lrjax.find_lr(loss, jnp.zeros(3), iter(listed), **kw)
  np.testing.assert_allclose(generated.smoothed_losses, scanned.smoothed_losses, rtol=1e-5)


def test_parameters_stop_changing_after_divergence():
  seen = []
  batches, loss = _problem(40)

  def recording_loss(w, b):
    jax.debug.callback(lambda x: seen.append(np.asarray(x)), w)
    return loss(w, b)

  r = lrjax.find_lr(recording_loss, jnp.zeros(3), batches, optimizer=optax.sgd, min_lr=1e-3,
                    max_lr=100.0, num_steps=40)
  assert r.stopped_at is not None and r.stopped_at < 39
  frozen = seen[r.stopped_at + 1:]
  assert len(frozen) > 1 and all(np.array_equal(f, frozen[0]) for f in frozen)


def test_caller_params_untouched():
  batches, loss = _problem(20)
  params = {"w": jnp.zeros(3)}
  before = np.asarray(params["w"]).copy()
  lrjax.find_lr(lambda p, b: loss(p["w"], b), params, batches, num_steps=20)
  np.testing.assert_array_equal(np.asarray(params["w"]), before)


def test_valley_rule_on_a_known_curve():
  lrs = np.logspace(-5, 0, 21)
  losses = np.array([5, 5.1, 5.0, 4.9, 4.5, 4.0, 3.2, 2.5, 2.0, 1.6, 1.3, 1.1, 1.0, 0.95, 0.93,
                     1.2, 2.0, 4.0, 8.0, 16.0, 30.0])
  # Longest decreasing subsequence ends at 14 with 14 points (indices 1..14): fastai
  # sets max_start = 14 - 14 = 0, sections = 14 / 3, idx = 0 + int(4.67) + int(2.33) = 6.
  assert _valley(lrs, losses) == pytest.approx(lrs[6])


def test_suggestions_and_plot(tmp_path):
  batches, loss = _problem()
  r = lrjax.find_lr(loss, jnp.zeros(3), batches, optimizer=optax.sgd, min_lr=1e-4,
                    max_lr=10.0, num_steps=60)
  assert set(r.suggestions) == {"steepest", "minimum", "valley"}
  assert r.suggestion == r.suggestions["valley"]
  finite = np.isfinite(r.smoothed_losses)
  n = int(finite.sum())
  lo, hi = n // 10, n - n // 20  # the skipped start and end
  window = r.smoothed_losses[finite][lo:hi]
  assert r.suggestions["minimum"] == pytest.approx(r.lrs[finite][lo + np.argmin(window)] / 10)
  path = tmp_path / "lr.png"
  r.plot(str(path))
  assert path.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("kwargs,message", [
    (dict(min_lr=0.0), "lrjax.find_lr: min_lr must be > 0"),
    (dict(min_lr=1.0, max_lr=0.5), "lrjax.find_lr: max_lr must be > min_lr=1.0, got max_lr=0.5"),
    (dict(num_steps=2), "lrjax.find_lr: num_steps must be an integer >= 3"),
    (dict(mode="log"), "lrjax.find_lr: mode must be one of 'exponential' | 'linear'"),
    (dict(smoothing=1.0), "lrjax.find_lr: smoothing must be in [0.0, 1.0)"),
    (dict(diverge_factor=1.0), "lrjax.find_lr: diverge_factor must be > 1"),
    (dict(num_steps=10), "lrjax.find_lr: stacked batches must have leading axis num_steps=10"),
])
def test_bad_arguments(kwargs, message):
  batches, loss = _problem(20)
  kwargs = {"num_steps": 20, **kwargs}
  with pytest.raises(ValueError) as info:
    lrjax.find_lr(loss, jnp.zeros(3), batches, **kwargs)
  assert str(info.value).startswith(message), str(info.value)


def test_too_few_batches_in_an_iterable():
  batches, loss = _problem(5)
  listed = [(batches[0][i], batches[1][i]) for i in range(5)]
  with pytest.raises(ValueError, match="gave 5 batches, need num_steps=10"):
    lrjax.find_lr(loss, jnp.zeros(3), listed, num_steps=10)
