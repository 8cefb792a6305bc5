"""current_lr reads the learning rate actually applied; bounds hold at every step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax

ONES = {"w": jnp.ones(3)}


def _applied_and_reported(tx, steps=8, losses=None, **read):
  """Per update: the rate the update applied (g = 1, SGD directions) and what current_lr says."""
  params = {"w": jnp.zeros(3)}
  state = tx.init(params)
  step = jax.jit(lambda p, s, v: tx.update(ONES, s, p, value=v))
  applied, reported = [], []
  losses = np.ones(steps) if losses is None else losses
  for v in losses:
    updates, state = step(params, state, jnp.float32(v))
    params = optax.apply_updates(params, updates)
    applied.append(-float(updates["w"][0]))
    reported.append(float(lrjax.current_lr(state, **read)))
  return np.array(applied), np.array(reported), state


def _plateau():
  return lrjax.reduce_on_plateau(1.0, factor=0.5, patience=0)


PATTERNS = {
    "inject_hyperparams": (lambda: optax.inject_hyperparams(optax.sgd)(
        learning_rate=lrjax.reduce_on_plateau(0.1, factor=0.5, patience=0)), {}),
    "inject then as_transform": (lambda: optax.chain(
        optax.inject_hyperparams(optax.sgd)(0.1), lrjax.as_transform(_plateau())), {}),
    "plain sgd then as_transform, schedule=": (lambda: optax.chain(
        optax.sgd(0.1), lrjax.as_transform(_plateau())), {"schedule": 0.1}),
    "decaying sgd then as_transform, schedule=": (lambda: optax.chain(
        optax.sgd(lrjax.cosine_decay(0.1, 8)), lrjax.as_transform(_plateau())),
        {"schedule": lrjax.cosine_decay(0.1, 8)}),
    "as_transform as the rate": (lambda: optax.chain(
        lrjax.as_transform(lrjax.reduce_on_plateau(0.1, factor=0.5, patience=0),
                           multiplier=False), optax.scale(-1.0)), {}),
    "two multipliers": (lambda: optax.chain(
        optax.inject_hyperparams(optax.sgd)(0.1), lrjax.as_transform(_plateau()),
        lrjax.as_transform(lrjax.reduce_on_plateau(1.0, factor=0.8, patience=1))), {}),
    "MultiSteps": (lambda: optax.MultiSteps(optax.inject_hyperparams(optax.sgd)(
        learning_rate=lrjax.reduce_on_plateau(0.1, factor=0.5, patience=0)), 1), {}),
    "apply_if_finite around a chain": (lambda: optax.apply_if_finite(optax.chain(
        optax.inject_hyperparams(optax.sgd)(0.1), lrjax.as_transform(_plateau())), 3), {}),
    "hypergradient": (lambda: lrjax.hypergradient(optax.sgd, init_value=0.1, hyper_lr=0.01), {}),
}


@pytest.mark.parametrize("name", list(PATTERNS))
def test_current_lr_is_the_rate_the_update_applied(name):
  build, read = PATTERNS[name]
  applied, reported, _ = _applied_and_reported(build(), **read)
  np.testing.assert_allclose(reported, applied, rtol=1e-6)
  if "hypergradient" not in name:
    assert applied[-1] < applied[0]  # the adaptive part acted, so the check has teeth


def test_current_lr_in_window_search_outside_rollbacks():
  tx = lrjax.window_search(optax.sgd, 0.1, window=12, probe_steps=3)
  params = {"w": jnp.zeros(3)}
  state = tx.init(params)
  for _ in range(14):
    updates, state = tx.update(ONES, state, params, value=jnp.float32(1.0))
    if int(state.phase) != 2:  # a rollback restores the snapshot instead of stepping
      assert -float(updates["w"][0]) == pytest.approx(float(lrjax.current_lr(state)), rel=1e-6)
    params = optax.apply_updates(params, updates)


def test_a_hidden_rate_is_a_clear_error():
  tx = optax.chain(optax.adam(0.1), lrjax.as_transform(lrjax.greedy(1.0)))
  state = tx.init({"w": jnp.zeros(3)})
  with pytest.raises(ValueError, match=r"as_transform multiplier but not the learning rate .*"
                     r"schedule="):
    lrjax.current_lr(state)
  assert float(lrjax.current_lr(state, schedule=0.1)) == pytest.approx(0.1)


def test_several_rates_are_ambiguous():
  tx = optax.multi_transform({"a": optax.inject_hyperparams(optax.sgd)(0.1),
                              "b": optax.inject_hyperparams(optax.sgd)(0.2)},
                             {"w": "a", "v": "b"})
  state = tx.init({"w": jnp.zeros(2), "v": jnp.zeros(2)})
  with pytest.raises(ValueError, match="holds 2 learning rates"):
    lrjax.current_lr(state)


def _bounded_plateau_reference(base, values, factor, min_value, eps=1e-8):
  """The documented rule, transcribed: lr_t = max(base(t) * s, min); PyTorch's reduction."""
  s, best, bad, out = 1.0, np.inf, 0, []
  for t, v in enumerate(values):
    lr = max(base(t) * s, min_value)
    out.append(lr)
    if v < best - (abs(best) * 1e-4 if np.isfinite(best) else 0.0):
      best, bad = v, 0
    else:
      bad += 1
    if bad > 0:
      new = max(lr * factor, min_value)
      if lr - new > eps and lr > 0:
        s *= new / lr
      bad = 0
  return np.array(out)


def test_min_value_is_a_floor_at_every_step_under_a_decaying_base():
  base = lambda t: 1.0 - t / 20  # noqa: E731  (lrjax.linear(1.0, 0.0, 20))
  values = [3.0, 2.0, 1.0, 1.0, 0.5] + [0.4 - 0.01 * k for k in range(15)]
  s = lrjax.reduce_on_plateau(lrjax.linear(1.0, 0.0, 20), factor=0.5, patience=0,
                              min_value=0.2)
  state, lrs = s.init(), []
  for v in values:
    lrs.append(float(s(state)))
    state = s.update(state, value=jnp.float32(v))
  np.testing.assert_allclose(lrs, _bounded_plateau_reference(base, values, 0.5, 0.2), rtol=1e-5)
  assert min(lrs) == pytest.approx(0.2)  # the base decays towards 0; the floor holds
  assert lrs[-1] == pytest.approx(0.2)


def test_max_value_is_a_ceiling_at_every_step_under_a_rising_base():
  s = lrjax.greedy(lrjax.linear(0.1, 1.0, 50), factor=0.5, patience=1, window=1,
                   threshold=0.0, max_value=0.4)
  state, lrs = s.init(), []
  for v in np.linspace(5.0, 1.0, 50):  # steady improvement: greedy keeps raising
    lrs.append(float(s(state)))
    state = s.update(state, value=jnp.float32(v))
  assert max(lrs) == pytest.approx(0.4) and lrs[-1] == pytest.approx(0.4)
  assert all(lr <= 0.4 * (1 + 1e-6) for lr in lrs)


def test_old_import_paths_warn_and_still_work():
  with pytest.warns(DeprecationWarning, match="lrjax.stateful.as_transform moved to "
                    "lrjax.transforms.as_transform"):
    from lrjax.stateful import as_transform
  assert as_transform is lrjax.as_transform
  with pytest.warns(DeprecationWarning, match="lrjax.stateful.current_lr moved"):
    assert lrjax.stateful.current_lr is lrjax.current_lr
  with pytest.warns(DeprecationWarning, match="lrjax.transforms.averaged_params moved"):
    assert lrjax.transforms.averaged_params is lrjax.averaged_params
  import importlib
  import sys
  for old, new in (("lrjax.tasks", "get_task"), ("lrjax.compare", "format_table")):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to lrjax.bench"):
      module = importlib.import_module(old)
    assert callable(getattr(module, new))


def test_a_new_transform_is_read_by_its_fields_without_registration():
  """A state of a transform lrjax has never seen: its ``lr`` field is the rate, its
  ``log_scalars()`` is logged, its ``averaged()`` is the average."""
  from typing import Any, NamedTuple

  class MyState(NamedTuple):
    lr: Any
    trials: Any
    inner_state: Any

    def log_scalars(self):
      return "mine", {"trials": self.trials}

  class MyAverage(NamedTuple):
    total: Any

    def averaged(self):
      return self.total / 2

  inner = optax.inject_hyperparams(optax.adamw)(learning_rate=0.5, weight_decay=0.25)
  inner_state = inner.init(jnp.zeros(2))
  state = (MyState(jnp.float32(0.03), jnp.int32(7), inner_state), MyAverage(jnp.ones(2) * 4))
  assert float(lrjax.current_lr(state)) == pytest.approx(0.03)
  values = lrjax.log_values(state)
  assert values["lr"] == pytest.approx(0.03) and values["mine/trials"] == 7.0
  assert values["hyperparams/weight_decay"] == pytest.approx(0.25)  # walked into inner_state
  np.testing.assert_allclose(lrjax.averaged_params(state), [2.0, 2.0])
