"""lrjax in Keras 3 (JAX backend): schedules as ``LearningRateSchedule``s, a plateau callback.

The optional extra ``lrjax[keras]``. Importing this module selects the JAX
backend when Keras has not been imported yet (``KERAS_BACKEND=jax``) and
refuses any other backend with a clear error: lrjax schedules are JAX code.

- ``schedule(s)``: any pure lrjax schedule as a
  ``keras.optimizers.schedules.LearningRateSchedule`` (values equal the lrjax
  schedule at every step; serialised through lrjax's own config, so a saved
  model keeps it);
- ``PlateauCallback(stateful, monitor="val_loss")``: drives an lrjax stateful
  schedule (``reduce_on_plateau``, ``greedy``, ``window_decay``) from a
  monitored metric at every epoch's end, with lrjax's exact semantics, its
  base (e.g. a warmup) moving per step underneath, ``min`` / ``max`` mode from
  the schedule. Pass ``callback.learning_rate`` to the optimizer.

Example:
  >>> import lrjax.keras, keras
  >>> lr = lrjax.keras.schedule(lrjax.cosine_decay(1e-3, 1_000))
  >>> optimizer = keras.optimizers.AdamW(learning_rate=lr)
  >>> round(float(lr(500)), 7)
  0.0005
"""

from __future__ import annotations

import os
from typing import Any, Optional

os.environ.setdefault("KERAS_BACKEND", "jax")

try:
  import keras  # noqa: E402
except ImportError:  # pragma: no cover - exercised without the extra
  raise ImportError("lrjax.keras needs Keras 3: pip install 'lrjax[keras]'") from None

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from lrjax._numerics import as_float  # noqa: E402
from lrjax.schedules._base import Schedule, as_schedule, from_config  # noqa: E402
from lrjax.stateful._core import StatefulSchedule  # noqa: E402

if keras.backend.backend() != "jax":
  raise ImportError(f"lrjax.keras needs Keras' JAX backend (KERAS_BACKEND=jax), but Keras runs "
                    f"on {keras.backend.backend()!r}: set KERAS_BACKEND=jax before importing keras")


def _step(step: Any) -> jax.Array:
  return jnp.asarray(keras.ops.convert_to_tensor(step))


@keras.saving.register_keras_serializable(package="lrjax")
class LrjaxSchedule(keras.optimizers.schedules.LearningRateSchedule):
  """A pure lrjax schedule as a Keras ``LearningRateSchedule``; built by ``schedule``."""

  def __init__(self, schedule: Schedule):
    self.schedule = schedule

  def __call__(self, step: Any) -> jax.Array:
    return self.schedule(_step(step))

  def get_config(self) -> dict:
    return {"schedule": self.schedule.to_config()}

  @classmethod
  def from_config(cls, config: dict) -> "LrjaxSchedule":
    return cls(from_config(config["schedule"]))


def schedule(s: Any) -> LrjaxSchedule:
  """A pure lrjax schedule (or a number) as a ``keras.optimizers.schedules.LearningRateSchedule``.

  Keras calls it with the optimizer's iteration count, from 0, as Optax does;
  the value is the lrjax schedule's at that step, in float32.

  Args:
    s: a pure lrjax schedule, a number, or a config dict.

  Returns:
    A serialisable ``LearningRateSchedule`` (``get_config`` holds ``s.to_config()``).

  Raises:
    ValueError: ``s`` is a stateful schedule (use ``PlateauCallback``) or not a schedule.

  Example:
    >>> import lrjax, lrjax.keras
    >>> lr = lrjax.keras.schedule(lrjax.wsd(1e-3, 10, 80, 10))
    >>> round(float(lr(5)), 7), lr.get_config()["schedule"]["name"]
    (0.0005, 'wsd')
  """
  if isinstance(s, StatefulSchedule):
    raise ValueError(f"lrjax.keras.schedule: lrjax.{s.name} is a stateful schedule; drive it "
                     "with lrjax.keras.PlateauCallback and pass callback.learning_rate")
  return LrjaxSchedule(as_schedule(s, "keras.schedule", "s"))


class _StatefulRate(keras.optimizers.schedules.LearningRateSchedule):
  """``clip(base(step) * scale, min, max)`` with ``scale`` an optimizer variable."""

  def __init__(self, stateful: StatefulSchedule):
    self.stateful = stateful
    self.scale: Optional[keras.Variable] = None

  def __call__(self, step: Any) -> jax.Array:
    scale = as_float(1.0) if self.scale is None else as_float(self.scale.value)
    return self.stateful.rate_at(_step(step), scale)

  def get_config(self) -> dict:
    return {"stateful": self.stateful.to_config()}


class PlateauCallback(keras.callbacks.Callback):
  """Drives an lrjax stateful schedule from a monitored metric at every epoch's end.

  The Keras ``ReduceLROnPlateau`` callback's job with lrjax's semantics: at
  each epoch's end, ``logs[monitor]`` is fed to the schedule (one
  ``observe``), which may change its scale; between decisions the learning
  rate of every step is ``clip(base(step) * scale, min_value, max_value)``,
  so a warmup base moves per step underneath. The sequence of learning rates
  equals ``lrjax.observe`` fed the same metrics (tested). A missing or
  non-finite metric changes nothing (and is counted).

  Args:
    stateful: an lrjax stateful schedule (``reduce_on_plateau``, ``greedy``,
      ``window_decay``), best built with ``signal="observe"``; its ``mode``
      says whether the metric is minimised or maximised.
    monitor: the ``logs`` key to follow (``"val_loss"``, ``"val_accuracy"`` ...).
    verbose: print each change of the learning rate.

  Attributes:
    learning_rate: the ``LearningRateSchedule`` to give the optimizer.
    state: the schedule's ``ScheduleState`` (its decision statistics).

  Example:
    >>> import lrjax, lrjax.keras
    >>> cb = lrjax.keras.PlateauCallback(lrjax.reduce_on_plateau(
    ...     lrjax.warmup(1e-3, 100), patience=2, signal="observe"))
    >>> round(float(cb.learning_rate(50)), 7)  # half-way up the warmup
    0.0005
  """

  def __init__(self, stateful: StatefulSchedule, monitor: str = "val_loss", verbose: int = 0):
    super().__init__()
    if not isinstance(stateful, StatefulSchedule):
      raise ValueError(f"lrjax.keras.PlateauCallback: stateful must be an lrjax stateful "
                       f"schedule (reduce_on_plateau, greedy, window_decay), got {stateful!r}")
    self.stateful = stateful
    self.monitor = monitor
    self.verbose = verbose
    self.learning_rate = _StatefulRate(stateful)
    self.state = stateful.init()
    self._observe = jax.jit(stateful.observe)

  def on_train_begin(self, logs: Optional[dict] = None) -> None:
    if self.learning_rate.scale is None:
      optimizer = self.model.optimizer
      # Keras 3 keeps the schedule object only in ``_learning_rate`` (its public
      # ``learning_rate`` is the current value): the one private name read here.
      if optimizer._learning_rate is not self.learning_rate:
        raise ValueError("lrjax.keras.PlateauCallback: give the optimizer "
                         "learning_rate=callback.learning_rate")
      # An optimizer variable, so the compiled train step reads its current value.
      scale = optimizer.add_variable(shape=(), initializer="ones", dtype="float32",
                                     name="lrjax_scale")
      scale.assign(float(self.state.scale))  # a copy: Keras donates its buffers
      self.learning_rate.scale = scale

  def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
    value = (logs or {}).get(self.monitor)
    if value is None:
      print(f"lrjax.keras.PlateauCallback: {self.monitor!r} is not in the logs "
            f"({', '.join(sorted(logs or {}))}); nothing decided")
      return
    steps = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
    before = self.state._replace(count=jnp.int32(steps))
    self.state = self._observe(before, jnp.float32(value))
    scale = self.learning_rate.scale
    if scale is None:
      raise RuntimeError("lrjax.keras.PlateauCallback: an epoch ended before training began "
                         "(on_train_begin makes the optimizer variable it sets)")
    scale.assign(float(self.state.scale))
    if self.verbose and float(self.state.scale) != float(before.scale):
      print(f"epoch {epoch + 1}: lrjax.{self.stateful.name} changed the learning rate to "
            f"{float(self.stateful(self.state)):.4g} ({self.monitor}={float(value):.4g})")
