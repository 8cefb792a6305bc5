"""lrjax in Keras 3 (JAX backend): schedule values, training, saving, the plateau callback."""

import os

import numpy as np
import optax
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "jax":
  pytest.skip("lrjax.keras needs KERAS_BACKEND=jax", allow_module_level=True)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import lrjax  # noqa: E402
import lrjax.keras  # noqa: E402,F401
from cases import CASES  # noqa: E402



@pytest.fixture(autouse=True)
def _keras_broadcasts():
  """Keras' layers rely on rank promotion (a bias added to a batch); the suite raises on it."""
  with jax.numpy_rank_promotion("allow"):
    yield


KERAS_CASES = [c for c in CASES if c.id in (
    "wsd_1sqrt", "one_cycle_cos", "cosine_restarts_mult2", "warmup_cosine_decay",
    "piecewise_linear", "exponential_staircase_begin_floor", "cyclic_exp_range")]


def test_the_case_list_is_not_empty():
  assert len(KERAS_CASES) == 7


@pytest.mark.parametrize("case", KERAS_CASES, ids=lambda c: c.id)
def test_values_equal_the_lrjax_schedule_at_every_step(case):
  s = case.build()
  lr = lrjax.keras.schedule(s)
  steps = np.arange(0, 300)
  got = np.array([float(lr(keras.ops.convert_to_tensor(t, "int32"))) for t in steps[::7]])
  want = np.array([float(s(jnp.int32(t))) for t in steps[::7]])
  np.testing.assert_array_equal(got, want)


def _data(n=64, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n, 4)).astype("float32")
  return x, (x @ np.array([1.0, -2.0, 0.5, 0.0], "float32"))[:, None]


def _model():
  return keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                           keras.layers.Dense(1)])


def test_adamw_trains_and_a_saved_model_keeps_its_schedule(tmp_path):
  s = lrjax.wsd(3e-3, 4, 8, 4)
  model = _model()
  model.compile(optimizer=keras.optimizers.AdamW(learning_rate=lrjax.keras.schedule(s)),
                loss="mse")
  x, y = _data()
  history = model.fit(x, y, epochs=4, batch_size=16, verbose=0)
  assert history.history["loss"][-1] < history.history["loss"][0]
  path = str(tmp_path / "model.keras")
  model.save(path)
  loaded = keras.models.load_model(path)
  lr = loaded.optimizer._learning_rate
  assert isinstance(lr, lrjax.keras.LrjaxSchedule)
  assert repr(lr.schedule) == repr(s)
  for t in range(16):
    assert float(lr(t)) == float(s(t))


def _applied_rates(stateful, metrics, steps_per_epoch=4):
  """Fits a linear model whose gradient is constant, so each step's weight change is -lr."""
  cb = lrjax.keras.PlateauCallback(stateful, monitor="metric")
  rates = []

  class Feed(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
      self.w = self.model.layers[0].kernel.numpy().copy()

    def on_train_batch_end(self, batch, logs=None):
      rates.append(float(self.w[0, 0] - self.model.layers[0].kernel.numpy()[0, 0]))

    def on_epoch_end(self, epoch, logs=None):
      logs["metric"] = float(metrics[epoch])  # the "validation" metric of this epoch

  model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
  model.compile(optimizer=keras.optimizers.SGD(learning_rate=cb.learning_rate),
                loss=lambda y_true, y_pred: keras.ops.mean(y_pred))
  x = np.ones((steps_per_epoch, 1), "float32")
  model.fit(x, np.zeros_like(x), epochs=len(metrics), batch_size=1, verbose=0,
            callbacks=[Feed(), cb], shuffle=False)
  return np.array(rates), cb


@pytest.mark.parametrize("mode", ["min", "max"])
def test_callback_rates_equal_lrjax_observe_fed_the_same_metrics(mode):
  rng = np.random.default_rng(0)
  metrics = np.concatenate([np.linspace(2.0, 1.0, 4), 1.0 + 0.01 * rng.standard_normal(8)])
  if mode == "max":
    metrics = 3.0 - metrics
  make = lambda: lrjax.reduce_on_plateau(lrjax.warmup(0.1, 6), factor=0.5,  # noqa: E731
                                         patience=1, mode=mode, signal="observe")
  rates, cb = _applied_rates(make(), metrics)
  tx = optax.inject_hyperparams(optax.sgd)(learning_rate=make())
  state, want = tx.init(jnp.zeros(1)), []
  for m in metrics:
    for _ in range(4):
      _, state = tx.update(jnp.ones(1), state)
      want.append(float(lrjax.current_lr(state)))
    state = lrjax.observe(state, jnp.float32(m))
  np.testing.assert_allclose(rates, want, rtol=1e-5)
  assert rates[-1] < 0.05  # the plateau reduced the rate; the warmup moved per step
  assert rates[1] > rates[0]


def test_bad_uses_are_clear_errors():
  with pytest.raises(ValueError, match="lrjax.keras.schedule: lrjax.reduce_on_plateau is a "
                     "stateful schedule"):
    lrjax.keras.schedule(lrjax.reduce_on_plateau(1e-3))
  with pytest.raises(ValueError, match="stateful must be an lrjax stateful schedule"):
    lrjax.keras.PlateauCallback(lrjax.cosine_decay(1e-3, 10))
  cb = lrjax.keras.PlateauCallback(lrjax.greedy(1e-3, signal="observe"))
  model = _model()
  model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e-3), loss="mse")
  with pytest.raises(ValueError, match="learning_rate=callback.learning_rate"):
    model.fit(*_data(), epochs=1, verbose=0, callbacks=[cb])
