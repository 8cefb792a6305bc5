"""The real training tasks: deterministic, compiled in chunks, and learning."""

import numpy as np
import optax
import pytest

import lrjax
from conftest import assert_same_run
from lrjax.bench import tasks
from lrjax.bench.unroll import train

pytest.importorskip("sklearn")
pytest.importorskip("flax")


@pytest.mark.optimized
@pytest.mark.parametrize("name,steps,check", [
    ("digits", 200, lambda m: m[-1] > 0.9),        # a CNN learns 8x8 digits quickly
    ("regression", 200, lambda m: m[-1] < 0.7),     # standardized MSE well below 1
    ("charlm", 60, lambda m: m[-1] < 6.0),          # below uniform (8 bits per byte)
])
def test_task_learns_and_is_deterministic(name, steps, check):
  task = tasks.get_task(name)
  tx = optax.inject_hyperparams(optax.adam)(learning_rate=lrjax.warmup_cosine_decay(
      0.0, 3e-3, 10, steps))
  a = train(task, tx, steps, seed=1, eval_every=steps // 2)
  b = train(task, tx, steps, seed=1, eval_every=steps // 2)
  assert list(a.steps) == [steps // 2, steps]
  assert_same_run(a.metric, b.metric)
  assert check(a.metric), a.metric
  # The LR curve is read from the optimizer state: the schedule's value at the last update.
  assert a.lrs[-1] == pytest.approx(float(lrjax.warmup_cosine_decay(0.0, 3e-3, 10, steps)(
      steps - 1)), rel=1e-5)


def test_stateful_schedule_receives_the_loss():
  task = tasks.get_task("regression")
  s = lrjax.reduce_on_plateau(1e-2, factor=0.5, patience=0)
  r = train(task, optax.inject_hyperparams(optax.adam)(learning_rate=s), 100,
                  eval_every=50)
  assert r.lrs[-1] < 1e-2  # plateaus in a noisy loss reduce it


def test_plain_optimizer_without_a_readable_lr_gives_nan_lrs():
  r = train(tasks.get_task("regression"), optax.adam(1e-3), 20, eval_every=10)
  assert np.all(np.isnan(r.lrs))


def test_unknown_task():
  with pytest.raises(ValueError, match="unknown task 'mnist'; known: digits, regression, charlm"):
    tasks.get_task("mnist")


def test_charlm_corpus_is_the_fixed_module_list():
  text = tasks.charlm_corpus()
  assert len(text) > 100_000 and "def wrap(" in text and "class Random" in text


def test_unroll_is_pure_and_vmaps_over_seeds_and_schedule_settings():
  import jax
  from lrjax.bench.unroll import init_and_unroll
  task = tasks.get_task("regression")
  keys = jax.random.split(jax.random.PRNGKey(0), 2)

  def run(key, factor):  # a stateful schedule's setting is a leaf: vmap reaches it
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=lrjax.reduce_on_plateau(
        1e-2, factor=factor, patience=0))
    return init_and_unroll(task, tx, key, 30)

  factors = np.array([0.5, 0.1], np.float32)
  batched = jax.jit(jax.vmap(run))(keys, factors)
  for i in range(2):
    one = jax.jit(run)(keys[i], factors[i])
    np.testing.assert_allclose(batched.loss[i], one.loss, rtol=2e-5)
    np.testing.assert_allclose(batched.lr[i], one.lr, rtol=2e-5)
  assert batched.loss.shape == (2, 30)
  assert float(batched.lr[1, -1]) < float(batched.lr[0, -1])  # the smaller factor cut deeper
