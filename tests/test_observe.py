"""lrjax.observe: decisions on a metric fed between updates (a validation loss per epoch)."""


import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax
from conftest import assert_same_run
import reference as ref
from lrjax.stateful._observe import raw_values
from test_devices_and_checkpoints import block

STEPS_PER_EPOCH = 5
WARMUP = 7


def _epochs(tx, metrics, observe=lrjax.observe):
  """Trains STEPS_PER_EPOCH updates an epoch, then observes the epoch's metric.

  Returns the learning rate of every update (read with current_lr) and the final state.
  """
  params = jnp.zeros(2)
  state = tx.init(params)
  step = jax.jit(lambda p, s: tx.update(jnp.ones(2), s, p))
  observe_jit = jax.jit(observe)
  lrs = []
  for m in metrics:
    for _ in range(STEPS_PER_EPOCH):
      updates, state = step(params, state)
      params = optax.apply_updates(params, updates)
      lrs.append(float(lrjax.current_lr(state)))
    state = observe_jit(state, jnp.float32(m))
  return np.array(lrs), state


def _val_metrics(n=24, seed=0):
  rng = np.random.default_rng(seed)
  trend = np.concatenate([np.linspace(2.0, 1.0, n // 3), np.full(n - n // 3, 1.0)])
  return (trend + 0.02 * rng.standard_normal(n)).astype(np.float32)


def _warmup(step):
  return min(step / WARMUP, 1.0)


@pytest.mark.parametrize("mode,cooldown,patience", [("min", 0, 2), ("min", 2, 1), ("max", 1, 2)])
def test_epoch_rates_equal_pytorch_with_a_per_step_warmup_underneath(mode, cooldown, patience):
  metrics = _val_metrics()
  if mode == "max":
    metrics = 3.0 - metrics
  s = lrjax.reduce_on_plateau(lrjax.warmup(1.0, WARMUP), factor=0.5, patience=patience,
                              cooldown=cooldown, mode=mode, signal="observe")
  lrs, _ = _epochs(optax.inject_hyperparams(optax.sgd)(learning_rate=s), metrics)
  # Transcribed PyTorch ReduceLROnPlateau at lr 1: its per-epoch lr is the scale.
  oracle = ref.TorchReduceLROnPlateau(1.0, mode, 0.5, patience, 1e-4, "rel", cooldown, 0.0, 1e-8)
  want = []
  for epoch, m in enumerate(metrics):
    for k in range(STEPS_PER_EPOCH):
      want.append(_warmup(epoch * STEPS_PER_EPOCH + k) * oracle.lr)
    oracle.step(float(m))
  np.testing.assert_allclose(lrs, want, rtol=1e-6)
  assert lrs[-1] < 0.5  # it did reduce: the test has teeth


def test_epoch_rates_equal_torch_itself_when_installed():
  torch = pytest.importorskip("torch")
  metrics = _val_metrics(30, seed=1)
  p = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.SGD([p], lr=0.3)
  sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, "min", 0.5, 2, 1e-3, "rel", 1, 0.01)
  want = []
  for m in metrics:
    want.extend([opt.param_groups[0]["lr"]] * STEPS_PER_EPOCH)
    sched.step(float(m))
  s = lrjax.reduce_on_plateau(0.3, 0.5, 2, 1e-3, "rel", "min", 1, 0.01, signal="observe")
  lrs, _ = _epochs(optax.inject_hyperparams(optax.sgd)(learning_rate=s), metrics)
  np.testing.assert_allclose(lrs, want, rtol=1e-6)


def _observing(**kw):
  return lrjax.reduce_on_plateau(1.0, factor=0.5, patience=0, signal="observe", **kw)


WRAPPERS = {
    "inject_hyperparams": lambda: optax.inject_hyperparams(optax.sgd)(
        learning_rate=lrjax.reduce_on_plateau(0.1, factor=0.5, patience=0, signal="observe")),
    "as_transform in a chain": lambda: optax.chain(optax.inject_hyperparams(optax.sgd)(0.1),
                                                  lrjax.as_transform(_observing())),
    "MultiSteps": lambda: optax.MultiSteps(optax.inject_hyperparams(optax.sgd)(
        learning_rate=lrjax.reduce_on_plateau(0.1, factor=0.5, patience=0, signal="observe")),
        1),
    "apply_if_finite": lambda: optax.apply_if_finite(optax.chain(
        optax.inject_hyperparams(optax.sgd)(0.1), lrjax.as_transform(_observing())), 3),
    "masked": lambda: optax.chain(optax.inject_hyperparams(optax.sgd)(0.1), optax.masked(
        lrjax.as_transform(_observing()), lambda p: jax.tree.map(lambda _: True, p))),
}


@pytest.mark.parametrize("name", list(WRAPPERS))
def test_observe_reaches_through_every_wrapper(name):
  lrs, state = _epochs(WRAPPERS[name](), [1.0, 1.0, 1.0, 1.0])
  # Flat metric, patience 0: halved after epochs 2, 3 and 4's observations.
  want = np.repeat([0.1, 0.1, 0.05, 0.025], STEPS_PER_EPOCH)
  np.testing.assert_allclose(lrs, want, rtol=1e-6)


def test_observe_under_lax_cond_every_n_steps_inside_one_compiled_scan():
  s = lrjax.reduce_on_plateau(0.1, factor=0.5, patience=0, signal="observe")
  tx = optax.inject_hyperparams(optax.sgd)(learning_rate=s)

  @jax.jit
  def run(params, state):
    def body(carry, t):
      params, state = carry
      updates, state = tx.update(jnp.ones(2), state, params)
      params = optax.apply_updates(params, updates)
      state = jax.lax.cond((t + 1) % STEPS_PER_EPOCH == 0,
                           lambda st: lrjax.observe(st, jnp.float32(1.0)), lambda st: st, state)
      return (params, state), lrjax.current_lr(state)
    return jax.lax.scan(body, (params, state), jnp.arange(4 * STEPS_PER_EPOCH))[1]

  lrs = run(jnp.zeros(2), tx.init(jnp.zeros(2)))
  np.testing.assert_allclose(lrs, np.repeat([0.1, 0.1, 0.05, 0.025], STEPS_PER_EPOCH),
                             rtol=1e-6)


def test_observe_schedules_need_no_value_on_update_and_update_schedules_do():
  tx = optax.inject_hyperparams(optax.sgd)(learning_rate=_observing())
  tx.update(jnp.ones(2), tx.init(jnp.zeros(2)), jnp.zeros(2))  # no value=: fine
  tx = optax.inject_hyperparams(optax.sgd)(learning_rate=lrjax.reduce_on_plateau(1.0))
  with pytest.raises(TypeError, match="value="):
    tx.update(jnp.ones(2), tx.init(jnp.zeros(2)), jnp.zeros(2))


def test_which_schedule_is_explicit():
  tx = optax.chain(optax.inject_hyperparams(optax.sgd)(learning_rate=_observing()),
                   lrjax.as_transform(lrjax.greedy(1.0, signal="observe")))
  state = tx.init(jnp.zeros(2))
  with pytest.raises(ValueError, match=r"which schedule\? several .*\[0\] "
                     r"lrjax.reduce_on_plateau.*\[1\] lrjax.greedy"):
    lrjax.observe(state, 1.0)
  by_index = lrjax.observe(lrjax.observe(state, 1.0, which=0), 1.0, which=0)
  by_name = lrjax.observe(lrjax.observe(state, 1.0, which="reduce_on_plateau"), 1.0,
                          which="reduce_on_plateau")
  chex.assert_trees_all_equal(by_index, by_name)
  assert float(by_index[0].hyperparams_states["learning_rate"].scale) == 0.5
  assert float(by_index[1].schedule_state.scale) == 1.0  # greedy untouched
  with pytest.raises(ValueError, match="which must be None, a schedule name or an index"):
    lrjax.observe(state, 1.0, which=5)
  with pytest.raises(ValueError, match="which='window_decay' names 0"):
    lrjax.observe(state, 1.0, which="window_decay")
  with pytest.raises(ValueError, match="holds no lrjax stateful schedule"):
    lrjax.observe(optax.adam(0.1).init(jnp.zeros(2)), 1.0)
  update_only = optax.inject_hyperparams(optax.sgd)(learning_rate=lrjax.greedy(1.0))
  with pytest.raises(ValueError, match="none was built with signal='observe'"):
    lrjax.observe(update_only.init(jnp.zeros(2)), 1.0)


def test_nonfinite_metrics_are_skipped_and_counted():
  tx = optax.inject_hyperparams(optax.sgd)(learning_rate=_observing())
  state = tx.init(jnp.zeros(2))
  for m in [1.0, np.nan, np.inf, 1.0]:
    state = lrjax.observe(state, jnp.float32(m))
  s = state.hyperparams_states["learning_rate"]
  assert int(s.num_nonfinite) == 2 and float(s.scale) == 0.5


def test_max_mode_on_accuracies_and_window_decay_counts_observations():
  tx = optax.inject_hyperparams(optax.sgd)(learning_rate=lrjax.reduce_on_plateau(
      1.0, factor=0.5, patience=1, mode="max", signal="observe"))
  state = tx.init(jnp.zeros(2))
  for acc in [0.5, 0.6, 0.6, 0.6]:
    state = lrjax.observe(state, acc)
  assert float(state.hyperparams_states["learning_rate"].scale) == 0.5
  wd = lrjax.window_decay(1.0, window=4, factor=0.5, signal="observe")
  tx = optax.inject_hyperparams(optax.sgd)(learning_rate=wd)
  state = tx.init(jnp.zeros(2))
  for m in [1.0, 1.1, 0.9, 1.05]:  # one window of 4 observations, no trend
    state = lrjax.observe(state, m)
  s = state.hyperparams_states["learning_rate"]
  assert float(s.scale) == 0.5 and int(s.stats.num_decays) == 1 and int(s.count) == 0


def test_flax_nnx_optimizer_is_observed_in_place():
  nnx = pytest.importorskip("flax.nnx")
  model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
  opt = nnx.Optimizer(model, optax.inject_hyperparams(optax.sgd)(learning_rate=lrjax.
                      reduce_on_plateau(0.05, factor=0.5, patience=0, signal="observe")),
                      wrt=nnx.Param)
  x = jnp.ones((4, 3))

  @nnx.jit
  def step(model, opt):
    grads = nnx.grad(lambda m: jnp.mean(m(x) ** 2))(model)
    opt.update(model, grads)

  lrs = []
  for epoch in range(3):
    step(model, opt)
    lrs.append(float(lrjax.current_lr(raw_values(opt.opt_state))))
    assert lrjax.observe(opt, 1.0) is opt
  np.testing.assert_allclose(lrs, [0.05, 0.05, 0.025], rtol=1e-6)


def test_eight_devices_decide_on_the_mean_metric():
  if jax.device_count() < 8:
    pytest.skip("needs 8 devices")
  tx = optax.inject_hyperparams(optax.sgd)(learning_rate=lrjax.reduce_on_plateau(
      1.0, factor=0.5, patience=0, axis_name="d", signal="observe"))
  params = jnp.zeros((8, 2))
  state = jax.pmap(tx.init)(params)
  observe = jax.pmap(lrjax.observe, axis_name="d")
  rng = np.random.default_rng(0)
  metrics = [1.0, 0.9, 0.95, 0.8]
  for m in metrics:  # shards differ; their mean is m
    shard = (m + 0.1 * rng.standard_normal(8)).astype(np.float32)
    state = block(observe(state, jnp.asarray(shard - shard.mean() + m)))
  s = state.hyperparams_states["learning_rate"]
  for leaf in jax.tree.leaves(s):
    leaf = np.asarray(leaf)
    np.testing.assert_array_equal(leaf, np.broadcast_to(leaf[0], leaf.shape))
  assert float(np.asarray(s.scale)[0]) == 0.5  # one bad epoch (0.95) out of four


def test_checkpoint_between_observations_resumes_bit_identically(tmp_path):
  ocp = pytest.importorskip("orbax.checkpoint")
  tx = optax.inject_hyperparams(optax.adam)(learning_rate=lrjax.greedy(
      lrjax.warmup(1e-2, 4), patience=1, window=3, signal="observe"))
  metrics = _val_metrics(10)
  _, straight = _epochs(tx, metrics)
  _, half = _epochs(tx, metrics[:4])
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(tmp_path / "ckpt", half)
  checkpointer.wait_until_finished()
  restored = checkpointer.restore(tmp_path / "ckpt", jax.tree.map(
      ocp.utils.to_shape_dtype_struct, tx.init(jnp.zeros(2))))

  params = jnp.zeros(2)  # adam's update with gradients of ones does not depend on params
  state = restored
  step = jax.jit(lambda p, s: tx.update(jnp.ones(2), s, p))
  for m in metrics[4:]:
    for _ in range(STEPS_PER_EPOCH):
      _, state = step(params, state)
    state = lrjax.observe(state, jnp.float32(m))
  assert_same_run((state.hyperparams_states, state.hyperparams),
                  (straight.hyperparams_states, straight.hyperparams))


def test_bad_signal_is_named():
  with pytest.raises(ValueError, match="lrjax.greedy: signal must be one of 'update' | 'observe', "
                     "got signal='epoch'"):
    lrjax.greedy(1.0, signal="epoch")


def _overfitting_metrics(n_sequences=26, epochs=40):
  """Held-out losses that fall for a third of the run, then climb (overfitting) to between
  1x and 20x their best by the end, with noise: one row per sequence."""
  rng = np.random.default_rng(7)
  rows = []
  for k in range(n_sequences):
    best = 10 ** rng.uniform(-2, 0)
    turn = epochs // 3
    rise = np.geomspace(1.0, 20.0, n_sequences)[k]
    fall = np.geomspace(20 * best, best, turn)
    climb = best * np.geomspace(1.0, rise, epochs - turn)
    rows.append((np.concatenate([fall, climb]) * np.exp(0.03 * rng.standard_normal(epochs))))
  return np.asarray(rows, np.float32)


@jax.jit
def _observe_each(schedule, metrics):
  """Per sequence (vmapped), the rate after each observed metric and the final state."""
  def one(ms):
    def body(state, m):
      state = schedule.observe(state, m)
      return state, schedule(state)
    return jax.lax.scan(body, schedule.init(), ms)
  return jax.vmap(one)(metrics)


def test_an_overfitting_validation_loss_follows_pytorch_with_the_default_guard():
  # The guard's spike rule is for per-update losses; a held-out loss fed by observe that climbs
  # far above its best is overfitting, where PyTorch's ReduceLROnPlateau does not cut.
  metrics = _overfitting_metrics()
  assert np.sum(metrics.max(axis=1) > 4 * metrics.min(axis=1)) >= 10  # the old false alarm
  s = lrjax.reduce_on_plateau(0.1, factor=0.5, patience=3, cooldown=1, signal="observe")
  assert s.guard  # the default
  states, lrs = _observe_each(s, jnp.asarray(metrics))
  for row, got in zip(metrics, np.asarray(lrs)):
    oracle = ref.TorchReduceLROnPlateau(0.1, "min", 0.5, 3, 1e-4, "rel", 1, 0.0, 1e-8)
    want = []
    for m in row:
      oracle.step(float(m))
      want.append(oracle.lr)
    np.testing.assert_allclose(got, want, rtol=1e-6)
  assert np.all(np.asarray(states.guard.num_spikes) == 0)
  # The non-finite rule still holds: three NaN metrics in a row cut the rate at once.
  nan_run = np.array([[1.0, 0.9, np.nan, np.nan, np.nan, 0.9]], np.float32)
  states, lrs = _observe_each(s, jnp.asarray(nan_run))
  np.testing.assert_allclose(np.asarray(lrs)[0], [0.1, 0.1, 0.1, 0.1, 0.01, 0.01], rtol=1e-6)
  assert int(states.guard.num_spikes[0]) == 1
