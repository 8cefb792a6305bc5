"""lrjax drop-ins with the signatures of Optax's and Keras' schedules, for their own test suites.

Each function builds the lrjax schedule that the README names as the counterpart of the peer's
schedule, translating only the argument names and parametrisation (Optax's ``alpha`` is a
fraction of ``init_value``, lrjax's ``end_value`` the value itself; Optax's
``boundaries_and_scales`` multiply, lrjax's ``values`` are the values). A peer schedule lrjax has
no counterpart for (Optax's cosine interpolation, its linear one-cycle with ``pct_final``) is
left as the peer's own. ``test_peer_suites.py`` runs the peers' tests against these.
"""

import types

import numpy as np

import lrjax


def _cumulative(init_value, boundaries_and_scales):
  """Optax's ``{boundary: scale}`` as sorted boundaries and the values they lead to."""
  items = sorted((boundaries_and_scales or {}).items())
  values = [init_value]
  for _, scale in items:
    values.append(values[-1] * scale)
  return [b for b, _ in items], values


class Optax:
  """``optax.schedules._schedule`` / ``_join``, lrjax inside."""

  @staticmethod
  def constant_schedule(value):
    return lrjax.constant(value)

  @staticmethod
  def linear_schedule(init_value, end_value, transition_steps, transition_begin=0):
    return lrjax.linear(init_value, end_value, transition_steps, transition_begin)

  @staticmethod
  def polynomial_schedule(init_value, end_value, power, transition_steps, transition_begin=0):
    return lrjax.polynomial(init_value, end_value, power, transition_steps, transition_begin)

  @staticmethod
  def piecewise_constant_schedule(init_value, boundaries_and_scales=None):
    boundaries, values = _cumulative(init_value, boundaries_and_scales)
    if not boundaries:
      return lrjax.constant(init_value)
    return lrjax.piecewise_constant(boundaries, values)

  @staticmethod
  def exponential_decay(init_value, transition_steps, decay_rate, transition_begin=0,
                        staircase=False, end_value=None):
    return lrjax.exponential_decay(init_value, transition_steps, decay_rate, transition_begin,
                                   staircase, end_value)

  @staticmethod
  def cosine_decay_schedule(init_value, decay_steps, alpha=0.0, exponent=1.0):
    return lrjax.cosine_decay(init_value, decay_steps, end_value=alpha * np.asarray(init_value),
                              exponent=exponent)

  @staticmethod
  def warmup_cosine_decay_schedule(init_value, peak_value, warmup_steps, decay_steps,
                                   end_value=0.0, exponent=1.0):
    return lrjax.warmup_cosine_decay(init_value, peak_value, warmup_steps, decay_steps,
                                     end_value, exponent)

  @staticmethod
  def sgdr_schedule(cosine_kwargs):
    pieces = [Optax.warmup_cosine_decay_schedule(**kw) for kw in cosine_kwargs]
    boundaries = np.cumsum([kw["decay_steps"] for kw in cosine_kwargs])[:-1]
    return pieces[0] if len(pieces) == 1 else lrjax.join(pieces, list(boundaries))

  @staticmethod
  def cosine_onecycle_schedule(transition_steps, peak_value, pct_start=0.3, div_factor=25.0,
                               final_div_factor=1e4):
    return lrjax.one_cycle(peak_value, transition_steps, pct_start, "cos", div_factor,
                           final_div_factor)

  @staticmethod
  def join_schedules(schedules, boundaries):
    return lrjax.join(schedules, boundaries)

  @staticmethod
  def piecewise_interpolate_linear(init_value, boundaries_and_scales=None):
    boundaries, values = _cumulative(init_value, boundaries_and_scales)
    if not boundaries:
      return lrjax.constant(init_value)
    return lrjax.piecewise_linear([0] + boundaries, values)


def optax_namespace(original):
  """``original`` (Optax's ``_schedule`` or ``_join`` module) with lrjax drop-ins in it."""
  ns = types.SimpleNamespace(**vars(original))
  for name in vars(Optax):
    if not name.startswith("_") and hasattr(original, name):
      setattr(ns, name, getattr(Optax, name))

  def piecewise_interpolate_schedule(interpolate_type, init_value, boundaries_and_scales=None):
    if interpolate_type == "linear":
      return Optax.piecewise_interpolate_linear(init_value, boundaries_and_scales)
    return original.piecewise_interpolate_schedule(interpolate_type, init_value,
                                                   boundaries_and_scales)
  if hasattr(original, "piecewise_interpolate_schedule"):
    ns.piecewise_interpolate_schedule = piecewise_interpolate_schedule
  return ns


def keras_namespace(original):
  """Keras' ``optimizers.schedules`` with its classes built from lrjax schedules through
  ``lrjax.keras.schedule``."""
  import lrjax.keras  # needs Keras' JAX backend: imported only when the Keras suite runs
  ns = types.SimpleNamespace(**vars(original))
  k = lrjax.keras.schedule

  def ExponentialDecay(initial_learning_rate, decay_steps, decay_rate, staircase=False,
                       name=None):
    return k(lrjax.exponential_decay(initial_learning_rate, decay_steps, decay_rate,
                                     staircase=staircase))

  def PiecewiseConstantDecay(boundaries, values, name=None):
    return k(lrjax.piecewise_constant(boundaries, values))

  def PolynomialDecay(initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0,
                      cycle=False, name=None):
    return k(lrjax.polynomial(initial_learning_rate, end_learning_rate, power, decay_steps,
                              cycle=cycle))

  def InverseTimeDecay(initial_learning_rate, decay_steps, decay_rate, staircase=False,
                       name=None):
    return k(lrjax.inverse_time_decay(initial_learning_rate, decay_steps, decay_rate,
                                      staircase))

  def CosineDecay(initial_learning_rate, decay_steps, alpha=0.0, name=None, warmup_target=None,
                  warmup_steps=0):
    if warmup_target is None:
      return k(lrjax.cosine_decay(initial_learning_rate, decay_steps,
                                  end_value=alpha * initial_learning_rate))
    return k(lrjax.warmup_cosine_decay(initial_learning_rate, warmup_target, warmup_steps,
                                       warmup_steps + decay_steps,
                                       end_value=alpha * warmup_target))

  def CosineDecayRestarts(initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0,
                          alpha=0.0, name=None):
    return k(lrjax.cosine_restarts(initial_learning_rate, first_decay_steps, t_mul, m_mul,
                                   end_value=alpha * initial_learning_rate))

  for fn in (ExponentialDecay, PiecewiseConstantDecay, PolynomialDecay, InverseTimeDecay,
             CosineDecay, CosineDecayRestarts):
    setattr(ns, fn.__name__, fn)
  return ns
