"""Weight averaging (EMA, SWA, LAWA) and scheduled weight decay."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax


def _produced_sequence(n=12, seed=0):
  """Parameters produced by n SGD(1.0) updates with random gradients, from p0."""
  rng = np.random.default_rng(seed)
  grads = rng.standard_normal((n, 3)).astype(np.float32)
  p0 = np.array([1.0, -2.0, 0.5], np.float32)
  produced = p0 - np.cumsum(grads, axis=0)
  return p0, grads, produced


def _run(avg, p0, grads, wrap=lambda tx: tx):
  tx = wrap(optax.chain(optax.sgd(1.0), avg))
  params = jnp.asarray(p0)
  state = tx.init(params)
  step = jax.jit(tx.update)
  out = []
  for g in grads:
    updates, state = step(jnp.asarray(g), state, params)
    params = optax.apply_updates(params, updates)
    out.append(np.asarray(lrjax.averaged_params(state)))
  return np.array(out), state


@pytest.mark.parametrize("decay", [0.0, 0.5, 0.9])
def test_ema_debiased_matches_transcription(decay):
  p0, grads, produced = _produced_sequence()
  got, _ = _run(lrjax.ema_params(decay), p0, grads)
  e = np.zeros(3)
  for n, p in enumerate(produced, start=1):
    e = decay * e + (1 - decay) * p
    np.testing.assert_allclose(got[n - 1], e / (1 - decay ** n), rtol=1e-5, atol=1e-6)


def test_ema_without_debias_starts_at_the_initial_params():
  p0, grads, produced = _produced_sequence()
  got, _ = _run(lrjax.ema_params(0.8, debias=False), p0, grads)
  e = p0.astype(np.float64)
  for n, p in enumerate(produced):
    e = 0.8 * e + 0.2 * p
    np.testing.assert_allclose(got[n], e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("start,every", [(0, 1), (3, 1), (2, 3), (11, 5)])
def test_swa_is_the_mean_of_the_right_snapshots(start, every):
  p0, grads, produced = _produced_sequence()
  got, state = _run(lrjax.swa(start, every), p0, grads)
  for n in range(len(produced)):
    taken = [k for k in range(n + 1) if k >= start and (k - start) % every == 0]
    want = produced[taken].mean(axis=0) if taken else p0
    np.testing.assert_allclose(got[n], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k,every", [(1, 1), (3, 1), (2, 3), (4, 2)])
def test_lawa_is_the_mean_of_the_latest_k_snapshots(k, every):
  p0, grads, produced = _produced_sequence()
  got, _ = _run(lrjax.lawa(k, every), p0, grads)
  for n in range(len(produced)):
    snaps = [produced[i] for i in range(n + 1) if (i + 1) % every == 0]
    want = np.mean(snaps[-k:], axis=0) if snaps else p0
    np.testing.assert_allclose(got[n], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("wrap", [lambda tx: optax.MultiSteps(tx, 1),
                                  lambda tx: optax.chain(optax.identity(), tx)])
def test_averaged_params_through_wrappers(wrap):
  p0, grads, produced = _produced_sequence(6)
  got, _ = _run(lrjax.swa(0), p0, grads, wrap)
  np.testing.assert_allclose(got[-1], produced.mean(axis=0), rtol=1e-5)


def test_averaging_passes_updates_through_and_keeps_its_structure():
  for avg in (lrjax.ema_params(), lrjax.swa(2), lrjax.lawa(3, 2)):
    params = {"a": jnp.ones((2, 2)), "b": jnp.zeros(3, jnp.bfloat16)}
    state = avg.init(params)
    updates = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
    out, new = jax.jit(avg.update)(updates, state, params)
    chex.assert_trees_all_equal(out, updates)
    chex.assert_trees_all_equal_shapes_and_dtypes(new, state)


def test_averaged_params_errors():
  with pytest.raises(ValueError, match="holds no averaged parameters"):
    lrjax.averaged_params(optax.adam(1e-3).init(jnp.zeros(2)))
  with pytest.raises(ValueError, match="needs params"):
    lrjax.swa(0).update(jnp.ones(2), lrjax.swa(0).init(jnp.ones(2)))


@pytest.mark.parametrize("make,message", [
    (lambda: lrjax.ema_params(1.0), "lrjax.ema_params: decay must be in [0.0, 1.0), got decay=1.0"),
    (lambda: lrjax.swa(-1), "lrjax.swa: start_step must be an integer >= 0, got start_step=-1"),
    (lambda: lrjax.swa(0, 0), "lrjax.swa: every must be an integer >= 1, got every=0"),
    (lambda: lrjax.lawa(0, 5), "lrjax.lawa: k must be an integer >= 1, got k=0"),
    (lambda: lrjax.scheduled_weight_decay(0.1, coupling="both"),
     "lrjax.scheduled_weight_decay: coupling must be one of 'relative' | 'independent' | 'lr'"),
    (lambda: lrjax.scheduled_weight_decay(0.1, coupling="lr"),
     "lrjax.scheduled_weight_decay: coupling='lr' needs the learning-rate schedule"),
    (lambda: lrjax.scheduled_weight_decay(0.1, 1e-3, max_lr=0.0),
     "lrjax.scheduled_weight_decay: max_lr must be > 0, got max_lr=0.0"),
])
def test_bad_arguments(make, message):
  with pytest.raises(ValueError) as info:
    make()
  assert str(info.value).startswith(message), str(info.value)


# ---- scheduled weight decay ---------------------------------------------------------

def _adam_then(decay_tx, schedule, steps=25):
  tx = optax.chain(optax.scale_by_adam(), optax.scale_by_learning_rate(schedule), decay_tx)
  return tx


def _train(tx, steps=25):
  params = {"w": jnp.linspace(-1.0, 2.0, 6), "b": jnp.array([0.5, -0.5])}
  state = tx.init(params)
  step = jax.jit(lambda p, s: tx.update(jax.tree.map(lambda x: jnp.sin(3 * x), p), s, p))
  for _ in range(steps):
    updates, state = step(params, state)
    params = optax.apply_updates(params, updates)
  return params, state


def test_lr_coupling_equals_optax_adamw():
  schedule = lrjax.warmup_cosine_decay(0.0, 1e-2, 5, 25)
  ours, _ = _train(_adam_then(lrjax.scheduled_weight_decay(0.1, schedule, "lr"), schedule))
  theirs, _ = _train(optax.adamw(schedule, weight_decay=0.1))
  chex.assert_trees_all_close(ours, theirs, rtol=1e-6, atol=1e-7)


def test_relative_and_independent_couplings():
  schedule = lrjax.cosine_decay(1e-2, 20)
  for coupling, coef in (("relative", lambda t: float(schedule(t)) / 1e-2),
                         ("independent", lambda t: 1.0)):
    tx = lrjax.scheduled_weight_decay(lrjax.step_decay(0.1, 10, 0.5), schedule, coupling)
    params = jnp.array([2.0, -4.0])
    state = tx.init(params)
    for t in range(15):
      updates, state = tx.update(jnp.zeros(2), state, params)
      lam = 0.1 * 0.5 ** (t // 10)
      np.testing.assert_allclose(updates, -lam * coef(t) * np.asarray(params), rtol=1e-5)
      assert float(state.decay) == pytest.approx(lam * coef(t), rel=1e-5)


def test_relative_with_a_given_max_lr_and_warmup():
  schedule = lrjax.warmup(lrjax.constant(1e-2), 4)
  tx = lrjax.scheduled_weight_decay(0.1, schedule, "relative", max_lr=1e-2)
  params = jnp.ones(1)
  state = tx.init(params)
  coefs = []
  for _ in range(6):
    _, state = tx.update(jnp.zeros(1), state, params)
    coefs.append(float(state.decay) / 0.1)
  np.testing.assert_allclose(coefs, [0.0, 0.25, 0.5, 0.75, 1.0, 1.0], atol=1e-6)


def test_mask_limits_the_decay():
  tx = lrjax.scheduled_weight_decay(0.5, coupling="independent",
                                    mask={"w": True, "b": False})
  params = {"w": jnp.ones(2), "b": jnp.ones(2)}
  updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
  np.testing.assert_allclose(updates["w"], -0.5)
  np.testing.assert_allclose(updates["b"], 0.0)
