"""The learned learning-rate controller: a small GRU reads the training signal and sets the rate.

The network, its inputs and its weights file live here; ``lrjax.meta`` trains the weights. The
gradient and parameter statistics the inputs need are all scale-free ratios, so they are read
from a fixed sample of at most about ``SAMPLE_SIZE`` coordinates (``lrjax._sampling.sample``;
every coordinate when the model is that small). The state is scalars (stored packed,
``lrjax._packed``) and two such samples, of the previous gradient and parameters (also the
estimate's weighted gradient sum and the start's sample when it estimates its base rate). An
update reads the sample, not the model, so the controller costs a few dozen scalar operations
per update at any model size. (An earlier version read the whole gradient and kept a copy of it; a
``lax.cond`` around that work does not help: XLA copies a buffer updated in place that a
conditional reads, on every update.)
"""

from __future__ import annotations

import importlib.resources
import io
import os
from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import _validation as v
from lrjax import _guard, _packed
from lrjax._guard import GuardState, init_guard
from lrjax._numerics import (as_float, choose_bits, counter, device_mean, increment_if,
                             read_value, scale_tree)
from lrjax._sampling import dot as _dot
from lrjax._sampling import dots, sample, sample_weights
from lrjax.transforms._lr_owner import GuardSettings, LROwner

#: The inputs of the network, in order (see ``features``).
FEATURES = ("trend_fast", "trend_slow", "above_best", "loss_vs_level", "grad_norm",
            "update_ratio", "cosine", "cosine_avg", "noise", "progress", "has_horizon",
            "log_multiplier", "estimate_growth")
NUM_FEATURES = len(FEATURES)
#: Smoothings of the loss levels: time constants of about 3, 20 and 100 updates.
LOSS_SMOOTHING = (0.7, 0.95, 0.99)
#: Smoothing of the gradient statistics (a time constant of 10 updates).
GRAD_SMOOTHING = 0.9
#: The largest change of log(learning rate) in one decision.
MAX_LOG_STEP = 0.1
#: Every input is clipped to [-FEATURE_CLIP, FEATURE_CLIP].
FEATURE_CLIP = 5.0
WEIGHT_KEYS = ("w_input", "w_hidden", "bias", "w_out", "b_out")
#: The estimate of the rate starts here (Prodigy's ``estim_lr0``) and only grows.
ESTIMATE_INIT = 1e-6
#: With a known horizon and ``every=None``: about this many decisions over it.
DECISIONS = 300
#: With a known horizon and ``warmup_steps=None``: a warmup over
#: ``total_steps // WARMUP_DIVISOR`` updates. The shipped weights were meta-trained with a tenth
#: (``lrjax.meta.TRAIN_WARMUP_DIVISOR``); a twentieth measured better with them on the
#: development set (``benchmarks/README.md``).
WARMUP_DIVISOR = 20
#: Without ``total_steps`` (and without ``init_value``), by default the network's rate is at most
#: this many times the estimate (``max_multiplier``): there it has no anneal to bring a rate it
#: raised back down, and a run it raises far above the estimate can wreck itself
#: (``benchmarks/README.md``, item 23).
NO_HORIZON_MAX_MULTIPLIER = 1.5
#: The decay of the estimate's sums (Prodigy's ``beta3``: the square root of Adam's beta2).
ESTIMATE_DECAY = 0.999 ** 0.5
#: Adam's betas, for the bias correction that weights each update in the estimate (as Prodigy).
ADAM_BETAS = (0.9, 0.999)
SHIPPED = "learned_controller.npz"


class LearnedControllerFields(NamedTuple):
  """The named fields of a :class:`LearnedControllerState` (its logical layout)."""

  count: jax.Array  # type: ignore[assignment]  # shape=(), dtype=int32 (shadows tuple.count)
  lr: jax.Array  # shape=(), dtype=float32.
  num_nonfinite: jax.Array  # shape=(), dtype=int32.
  inner_state: Any
  guard: GuardState
  hidden: jax.Array  # shape=(hidden_size,), dtype=float32.
  loss_levels: jax.Array  # shape=(3,), dtype=float32.
  best_level: jax.Array  # shape=(), dtype=float32.
  grad_sq: jax.Array  # shape=(), dtype=float32.
  prev_grad_sq: jax.Array  # shape=(), dtype=float32.
  cosine_avg: jax.Array  # shape=(), dtype=float32.
  noise: jax.Array  # shape=(), dtype=float32.
  stats_count: jax.Array  # shape=(), dtype=int32.
  inputs: jax.Array  # shape=(NUM_FEATURES,), dtype=float32: the network's last inputs.
  grad_sample: jax.Array  # shape=(about SAMPLE_SIZE,), dtype=float32.
  param_sample: jax.Array  # like grad_sample.
  rate: jax.Array  # shape=(), dtype=float32.
  estimate: jax.Array  # shape=(), dtype=float32.
  numerator: jax.Array  # shape=(), dtype=float32.
  grad_sum: jax.Array  # like grad_sample, or shape (0,) with init_value.
  param0: jax.Array  # like grad_sample, or shape (0,) with init_value.


@_packed.register
class LearnedControllerState(_packed.PackedState):
  """State of ``learned_controller``: its scalars stored packed (``lrjax._packed``), the GRU's
  memory, the samples and ``inner_state``.

  Attributes:
    count: updates so far (saturating).
    lr: the learning rate of the most recent update: ``rate`` times the warmup's ramp
      (``init_value`` at first).
    num_nonfinite: updates whose gradients or loss were not finite (rate kept).
    inner_state: the inner optimizer's state.
    guard: the spike guard's scalars; ``num_spikes`` counts the spikes caught and
      ``ceiling`` is the highest rate allowed: ``max_value``, lowered by each spike to
      :math:`\\sqrt{\\text{guard\\_cut}}` times the rate that spiked.
    hidden: the GRU's hidden state, shape ``(hidden_size,)``.
    loss_levels: the loss smoothed with ``LOSS_SMOOTHING``, shape ``(3,)``.
    best_level: the lowest middle level since the statistics last (re)started.
    grad_sq: the smoothed squared gradient norm.
    prev_grad_sq: the squared norm of the gradient in ``grad_sample`` (0: none yet).
    cosine_avg: the smoothed cosine of successive gradients.
    noise: the smoothed :math:`\\|g_t - g_{t-1}\\|^2 / (\\|g_t\\|^2 + \\|g_{t-1}\\|^2)`.
    stats_count: finite updates since the statistics last (re)started (saturating).
    inputs: the network's inputs at the last decision (``FEATURES``), for logging.
    grad_sample: ``sample`` of the previous gradient (zeros, and not read, when that update
      was not finite).
    param_sample: ``sample`` of the parameters at that update (the next update's step is
      read against it; zeros, and not read, when it was not finite).
    rate: the rate :math:`\\alpha` the network decides on: the base :math:`b` (``estimate``)
      times the network's multiplier; ``lr`` is it times the schedule's shape.
    estimate: the base :math:`b`: ``init_value`` when given, else the running estimate
      :math:`\\hat d` (Prodigy's :math:`d`; starts at ``ESTIMATE_INIT``, never falls).
    numerator: the estimate's weighted sum of :math:`\\langle g_k, x_0 - x_k \\rangle`
      over the updates so far (the previous one included; device-averaged terms).
    grad_sum: ``sample`` of the estimate's weighted sum of gradients over the updates so far
      (empty with ``init_value``).
    param0: ``sample`` of the initial parameters (empty with ``init_value``).
  """
  _logical = LearnedControllerFields
  __slots__ = ()

  def log_scalars(self) -> tuple[str, dict[str, Any]]:
    """What ``lrjax.log_values`` logs of this state: a label and its scalars."""
    return "learned_controller", {
        "lr": self.lr,
        "rate": self.rate,
        "estimate": self.estimate,
        "ceiling": self.guard.ceiling,
        "num_nonfinite": self.num_nonfinite,
        "num_spikes": self.guard.num_spikes,
    }

# ---------------------------------------------------------------------------------------------
# The network.

def init_weights(key: jax.Array, hidden_size: int = 16, scale: float = 0.1) -> dict[str, Any]:
  """Random GRU weights (``scale``-sized normal entries; zero biases and output).

  Args:
    key: a PRNG key.
    hidden_size: units of the GRU.
    scale: standard deviation of the input and recurrent weights.

  Returns:
    ``{"w_input": (F, 3H), "w_hidden": (H, 3H), "bias": (3H,), "w_out": (H,),
    "b_out": ()}``, float32; a zero output layer, so the rate starts constant.
  """
  k1, k2 = jax.random.split(key)
  h = hidden_size
  return {"w_input": scale * jax.random.normal(k1, (NUM_FEATURES, 3 * h), jnp.float32),
          "w_hidden": scale * jax.random.normal(k2, (h, 3 * h), jnp.float32),
          "bias": jnp.zeros((3 * h,), jnp.float32), "w_out": jnp.zeros((h,), jnp.float32),
          "b_out": jnp.zeros((), jnp.float32)}


def gru_step(weights: dict[str, Any], hidden: jax.Array, x: jax.Array
             ) -> tuple[jax.Array, jax.Array]:
  r"""One GRU step and the bounded change of log(learning rate) it outputs.

  .. math::
    z, r &= \sigma(W_x^{z,r} x + W_h^{z,r} h + b^{z,r}), \quad
    n = \tanh(W_x^n x + r \odot (W_h^n h) + b^n), \quad
    h' = (1 - z) \odot n + z \odot h, \\
    \Delta &= \Delta_{\max} \tanh(w_o \cdot h' + b_o)

  with :math:`\Delta_{\max}` = ``MAX_LOG_STEP``. Float32 at full precision.

  Returns:
    ``(h', Δ)``.
  """
  n_hidden = hidden.shape[-1]
  gx = _dot(x, weights["w_input"]) + weights["bias"]
  gh = _dot(hidden, weights["w_hidden"])
  z = jax.nn.sigmoid(gx[:n_hidden] + gh[:n_hidden])
  r = jax.nn.sigmoid(gx[n_hidden:2 * n_hidden] + gh[n_hidden:2 * n_hidden])
  n = jnp.tanh(gx[2 * n_hidden:] + r * gh[2 * n_hidden:])
  new = (1 - z) * n + z * hidden
  return new, MAX_LOG_STEP * jnp.tanh(_dot(new, weights["w_out"]) + weights["b_out"])


def _symlog_rel(a, b):
  """A scale-free, bounded relative difference of two levels: sign(d) log(1 + 100 |d|) with
  d = (a - b) / max(|b|, 1e-12), computed from a - b so the divide is read once."""
  diff = a - b
  return jnp.sign(diff) * jnp.log1p(100.0 * (jnp.abs(diff) / jnp.maximum(jnp.abs(b), 1e-12)))


def _safe_log(x):
  return jnp.log(jnp.maximum(x, 1e-30))


def features(state: LearnedControllerFields, loss: jax.Array, grad_sq: jax.Array,
             cosine: jax.Array, step_sq: jax.Array, param_sq: jax.Array, lr: jax.Array,
             estimate: Optional[jax.Array], total_steps: Optional[int]) -> jax.Array:
  """The network's inputs (``FEATURES``) after the statistics saw this update.

  Every input is scale-free and clipped to ``[-FEATURE_CLIP, FEATURE_CLIP]``:
  loss trends as sign(d)·log(1 + 100|d|) of relative differences between the
  loss levels (``LOSS_SMOOTHING``), the squared gradient norm's log against its
  running average, log10 of the update-to-parameter norm ratio (+3), the
  cosine of successive gradients (now and smoothed), the noise estimate minus
  1/2, the progress ``count / total_steps`` (and a flag, 0 without a horizon),
  log(lr / base) (the network's multiplier, ``state.estimate`` the base) and
  log(``estimate`` / ``state.estimate``): how much the base grew at this update (0 when
  ``estimate`` is ``None``: a constant base, ``init_value``).
  """
  ratio = jnp.sqrt(step_sq / jnp.maximum(param_sq, 1e-30))
  horizon = as_float(0.0 if total_steps is None else total_steps)
  known = horizon > 0
  progress = jnp.where(known, jnp.minimum(as_float(state.count) / jnp.where(known, horizon, 1.0),
                                          1.0), 0.0)
  has = known.astype(jnp.float32)
  # Three trends elementwise over one vector of the levels, not scalar by scalar: XLA fuses
  # them into one kernel, where each was a kernel of its own and a copy into the stack.
  mid = state.loss_levels[1]
  trends = _symlog_rel(state.loss_levels[jnp.asarray([0, 1, 1])],
                       jnp.concatenate([state.loss_levels[1:], state.best_level[None]]))
  # Without an estimate (``estimate`` None) the base does not grow: 0, not log(b) - log(b).
  grown = (_safe_log(estimate) - _safe_log(state.estimate) if estimate is not None
           else as_float(0.0))
  x = _packed.join_scalars([
      trends[0], trends[1], trends[2], _symlog_rel(loss, mid),
      _safe_log(grad_sq) - _safe_log(state.grad_sq),
      jnp.where((param_sq > 0) & (step_sq >= 0), jnp.log10(jnp.maximum(ratio, 1e-30)) + 3.0,
                0.0),
      cosine, state.cosine_avg, state.noise - 0.5, progress, has,
      _safe_log(lr) - _safe_log(state.estimate), grown])
  return jnp.clip(jnp.where(jnp.isfinite(x), x, 0.0), -FEATURE_CLIP, FEATURE_CLIP)


# ---------------------------------------------------------------------------------------------
# Weights files.

def save_weights(path: Union[str, os.PathLike], weights: dict[str, Any], **meta: Any) -> None:
  """Writes ``weights`` (and string/number ``meta`` fields) to an ``.npz`` file."""
  arrays = {k: np.asarray(weights[k], np.float32) for k in WEIGHT_KEYS}
  arrays.update({f"meta_{k}": np.asarray(val) for k, val in meta.items()})
  arrays["meta_features"] = np.asarray(",".join(FEATURES))
  with open(path, "wb") as f:
    np.savez(f, **arrays)  # type: ignore[arg-type]  # NumPy's stub types **kwds as allow_pickle


def load_weights(source: Any = None, fn: str = "learned_controller") -> dict[str, Any]:
  """The controller's weights: the shipped ones (``None``), from an ``.npz`` path, or a dict.

  Raises:
    ValueError: a missing key, a wrong shape, non-finite entries, or weights
      written for other inputs.
  """
  if source is None:
    data = importlib.resources.files("lrjax.weights").joinpath(SHIPPED).read_bytes()
    source = dict(np.load(io.BytesIO(data)))
  elif isinstance(source, (str, os.PathLike)):
    if not os.path.exists(source):
      raise ValueError(f"lrjax.{fn}: weights file {os.fspath(source)!r} does not exist")
    with np.load(source) as data:
      source = dict(data)
  if not isinstance(source, dict):
    raise ValueError(f"lrjax.{fn}: weights must be None, a path or a dict of arrays, "
                     f"got weights={type(source).__name__}")
  names = source.get("meta_features")
  if names is not None and str(names) != ",".join(FEATURES):
    raise ValueError(f"lrjax.{fn}: these weights were trained on other inputs ({names}); "
                     f"this version reads {','.join(FEATURES)}")
  missing = [k for k in WEIGHT_KEYS if k not in source]
  if missing:
    raise ValueError(f"lrjax.{fn}: weights miss {', '.join(missing)}")
  w = {k: source[k] for k in WEIGHT_KEYS}
  concrete = all(v.concrete(x) is not None for x in w.values())
  if concrete:
    w = {k: np.asarray(x, np.float32) for k, x in w.items()}
    h = w["w_hidden"].shape[0] if w["w_hidden"].ndim == 2 else -1
    want = {"w_input": (NUM_FEATURES, 3 * h), "w_hidden": (h, 3 * h), "bias": (3 * h,),
            "w_out": (h,), "b_out": ()}
    for k, shape in want.items():
      if w[k].shape != shape:
        raise ValueError(f"lrjax.{fn}: weights[{k!r}] must have shape {shape}, "
                         f"got {w[k].shape}")
      if not np.all(np.isfinite(w[k])):
        raise ValueError(f"lrjax.{fn}: weights[{k!r}] must be finite")
    w = {k: jnp.asarray(x) for k, x in w.items()}
  return w


# ---------------------------------------------------------------------------------------------
# The transform.

def warmup_ramp(count: jax.Array, warmup_steps: Any) -> jax.Array:
  """:math:`\\min(1, (t + 1) / W)` at update :math:`t` (0-based) of a warmup of :math:`W`
  updates; 1 throughout when :math:`W = 0`."""
  w = as_float(warmup_steps)
  return jnp.where(w > 0, jnp.minimum(1.0, (as_float(count) + 1.0) / jnp.maximum(w, 1.0)), 1.0)


def shape(count: jax.Array, warmup_steps: Any, total_steps: Any, anneal: bool) -> jax.Array:
  r"""The schedule's shape :math:`s_t` at update :math:`t` (0-based): the warmup ramp, then
  (with ``anneal`` and a horizon :math:`T` > 0) a cosine from 1 to 0 over :math:`[W, T]`:

  .. math::
    s_t = \min\left(1, \frac{t + 1}{W}\right)
          \cdot \tfrac12 \left(1 + \cos \frac{\pi \min(\max(t - W, 0), T - W)}{T - W}\right)

  (Optax's ``warmup_cosine_decay_schedule(0, 1, W, T)`` after the warmup, whose ramp starts
  at :math:`1/W` rather than 0.) ``total_steps`` 0 or ``None``: the ramp only.
  """
  ramp = warmup_ramp(count, warmup_steps)
  if not anneal or total_steps is None:
    return ramp
  t, w, h = as_float(count), as_float(warmup_steps), as_float(total_steps)
  span = jnp.maximum(h - w, 1.0)
  cosine = 0.5 * (1.0 + jnp.cos(jnp.pi * jnp.clip(t - w, 0.0, span) / span))
  return jnp.where(h > 0, ramp * cosine, ramp)


def _zeroed_unless(x: jax.Array, keep: jax.Array) -> jax.Array:
  """The float32 vector ``x`` where the scalar ``keep`` holds, else zeros (even where ``x`` is
  NaN), by its bits (``choose_bits``): no select over the sample, which in a small model is
  the whole model."""
  return choose_bits(keep, x, jnp.zeros_like(x))


def _bias_correction(count: jax.Array) -> jax.Array:
  """Adam's :math:`\\sqrt{1 - \\beta_2^{t+1}} / (1 - \\beta_1^{t+1})` at update :math:`t`."""
  b1, b2 = ADAM_BETAS
  n = as_float(count) + 1.0
  return jnp.sqrt(1.0 - b2 ** n) / (1.0 - b1 ** n)


def _sample_statistics(state: LearnedControllerFields, updates: Any, params: Any,
                       raw_loss: jax.Array, estimating: bool, axis_name: Optional[str]):
  """Every statistic of an update from the samples, in one collective.

  Returns ``(g, p, stats)``: the samples of the gradient and the parameters and the device
  means of the loss, g·g, θ·θ, g·g_prev, |θ_t − θ_{t−1}|² (the last update's step, as the
  parameters moved) and, when estimating, this update's term of the estimate (its gradient
  against its distance from the start, :math:`\\langle g_t, x_0 - x_t \\rangle`) and the
  L1 norm of the weighted gradient sum so far.
  """
  g, p = sample(updates), sample(params)
  step = p - state.param_sample
  extra = ([(g, state.param0 - p),
            (jnp.abs(state.grad_sum), sample_weights(params))] if estimating else [])
  # One pass over the samples for every inner product (``dots``), not a kernel each.
  sums = dots([(g, g), (p, p), (g, state.grad_sample), (step, step)] + extra)
  stats = device_mean(jnp.concatenate([jnp.reshape(raw_loss, (1,)), sums]), axis_name)
  return g, p, stats


def _prodigy_estimate(state: LearnedControllerFields, stats: jax.Array, d_coef: Any):
  """Prodigy's estimate from the sums of the updates before this one (as Prodigy applies d
  before it grows), ``_sample_statistics``' last statistic the sum's L1 norm."""
  ratio = d_coef * state.numerator / jnp.where(stats[6] > 0, stats[6], 1.0)
  return jnp.where((stats[6] > 0) & jnp.isfinite(ratio), jnp.maximum(state.estimate, ratio),
                   state.estimate)


def _estimate_sums(state: LearnedControllerFields, g: jax.Array, term: jax.Array,
                   weight: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The estimate's sums with this update's term added at ``weight`` (0: not counted, where
  the term may be NaN): ``(numerator, grad_sum)``, each decayed by ``ESTIMATE_DECAY``."""
  counted = weight > 0
  numerator = ESTIMATE_DECAY * state.numerator + jnp.where(counted, weight * term, 0.0)
  return numerator, ESTIMATE_DECAY * state.grad_sum + weight * _zeroed_unless(g, counted)


def _running_statistics(state: LearnedControllerFields, loss: jax.Array, grad_sq: jax.Array,
                        cross: jax.Array):
  """The state's running statistics moved by this update (kept only where it is finite), and
  the cosine of this gradient with the previous one: ``(stepped state, cosine)``."""
  started = state.stats_count > 0
  have_prev = state.prev_grad_sq > 0
  betas = jnp.asarray(LOSS_SMOOTHING, jnp.float32)
  levels = jnp.where(started, betas * state.loss_levels + (1 - betas) * loss,
                     jnp.full((3,), loss, jnp.float32))
  best = jnp.where(started, jnp.minimum(state.best_level, levels[1]), levels[1])
  # ``product > 0`` is ``sqrt(product) > 0`` for every float (NaN and denormals included):
  # read so, the square root has one consumer and XLA fuses it there.
  product = grad_sq * state.prev_grad_sq
  cosine = jnp.where(have_prev & (product > 0),
                     jnp.clip(cross / jnp.where(product > 0, jnp.sqrt(product), 1.0), -1.0,
                              1.0), 0.0)
  denom = grad_sq + state.prev_grad_sq
  noise_now = jnp.where(denom > 0, jnp.clip((denom - 2 * cross)
                                            / jnp.where(denom > 0, denom, 1.0), 0.0, 2.0),
                        1.0)
  b = GRAD_SMOOTHING
  stepped = state._replace(
      loss_levels=levels, best_level=best,
      grad_sq=jnp.where(started, b * state.grad_sq + (1 - b) * grad_sq, grad_sq),
      cosine_avg=jnp.where(have_prev, b * state.cosine_avg + (1 - b) * cosine,
                           state.cosine_avg),
      noise=jnp.where(have_prev, b * state.noise + (1 - b) * noise_now,
                      jnp.where(started, state.noise, 0.5)),
      stats_count=increment_if(state.stats_count))
  return stepped, cosine


def controller(owner: LROwner, weights: dict[str, Any], *, init_value: Any, every: Any,
               min_value: Any, max_value: Any, total_steps: Optional[int],
               axis_name: Optional[str], settings: GuardSettings, reset_hidden: bool = False,
               policy: Optional[Callable[..., Any]] = None, warmup_steps: Any = 0,
               anneal: bool = False, d_coef: Any = 1.0,
               max_multiplier: Any = None) -> optax.GradientTransformationExtraArgs:
  """The transform without argument checks (``learned_controller`` checks; meta-training
  builds it with traced weights, starting rate, ``total_steps`` (0 for unknown) and ``every``).

  ``init_value`` ``None``: the base is the running estimate (``estimate``, ``d_coef`` times
  Prodigy's ratio), else this constant. ``policy(weights, hidden, inputs) -> (hidden, Δ)``
  replaces the GRU (``gru_step``) for a hand-made rule; ``reset_hidden`` zeroes the memory
  before every decision (an ablation). ``warmup_steps`` and ``anneal``: the schedule's
  ``shape``.
  """
  policy = gru_step if policy is None else policy
  hidden_size = weights["w_hidden"].shape[0]
  estimating = init_value is None
  base0 = ESTIMATE_INIT if estimating else init_value

  def init_fn(params):
    zero = as_float(0.0)
    empty = jnp.zeros_like(sample(params))
    p0 = sample(params) if estimating else jnp.zeros((0,), zero.dtype)
    return LearnedControllerState(
        **owner.init_fields(params, base0), guard=init_guard(ceiling=max_value),
        hidden=jnp.zeros((hidden_size,), zero.dtype), loss_levels=jnp.zeros((3,), zero.dtype),
        best_level=jnp.zeros_like(zero), grad_sq=jnp.zeros_like(zero),
        prev_grad_sq=jnp.zeros_like(zero), cosine_avg=jnp.zeros_like(zero),
        noise=jnp.zeros_like(zero), stats_count=counter(),
        inputs=jnp.zeros((NUM_FEATURES,), zero.dtype),
        grad_sample=empty, param_sample=jnp.zeros_like(empty), rate=as_float(base0),
        estimate=as_float(base0), numerator=jnp.zeros_like(zero), grad_sum=jnp.zeros_like(p0),
        param0=p0)

  def update_fn(updates, state, params=None, **extra_args):
    owner.require_params(params, "the update-to-parameter ratio reads them")
    value = extra_args.get("value")
    if value is None:
      raise ValueError("lrjax.learned_controller: update needs the loss: "
                       "tx.update(grads, state, params, value=loss)")
    raw_loss, _ = read_value(value, None, "lrjax.learned_controller")  # averaged below
    packed, state = state, state.view()  # each field read once from the packed vectors
    g, p, stats = _sample_statistics(state, updates, params, raw_loss, estimating, axis_name)
    loss, grad_sq, param_sq, cross, step_sq = (stats[i] for i in range(5))
    ok = jnp.all(jnp.isfinite(stats[:3]))
    guard_state, spike = owner.spike(state.guard, loss, jnp.isfinite(grad_sq), settings, None)
    estimate = _prodigy_estimate(state, stats, d_coef) if estimating else state.estimate
    # With the estimate, the inner optimizer reads (d / d_0) g, as Prodigy's Adam moments
    # average d g: while d grows, recent gradients weigh more (an Adam-like direction does not
    # depend on the gradient's scale otherwise).
    scaled = scale_tree(updates, estimate / ESTIMATE_INIT) if estimating else updates
    direction, inner_state = owner.direction(scaled, state.inner_state, params, **extra_args)

    have_prev = state.prev_grad_sq > 0
    stepped, cosine = _running_statistics(state, loss, grad_sq, cross)
    # The rate follows the base: the network's multiplier (rate / base) is what it moves.
    grown = state.rate * (estimate / state.estimate) if estimating else state.rate

    def decide(_):
      # The state's own scalars read here again from its vectors: behind the conditional, a
      # scalar read outside is an operand XLA copies out of the vector on every update.
      now = packed.view()
      x = features(stepped._replace(count=now.count, estimate=now.estimate), loss, grad_sq,
                   cosine, jnp.where(have_prev, step_sq, -1.0), param_sq, now.rate,
                   estimate if estimating else None, total_steps)
      hidden = jnp.zeros_like(state.hidden) if reset_hidden else state.hidden
      new_hidden, delta = policy(weights, hidden, x)
      return new_hidden, grown * jnp.exp(delta), x

    keep = lambda _: (state.hidden, grown, state.inputs)  # noqa: E731
    if isinstance(every, int) and every == 1:
      hidden, lr, inputs = decide(None)
    else:  # the GRU only at a decision (the statistics are a few scalars: every update)
      at = (optax.safe_increment(state.count) % every) == 0
      hidden, lr, inputs = jax.lax.cond(at, decide, keep, None)
    if estimating and max_multiplier is not None:  # the network's say above the estimate
      lr = jnp.minimum(lr, max_multiplier * estimate)
    lr = jnp.clip(lr, min_value, state.guard.ceiling)
    hidden = jnp.where(ok, hidden, state.hidden)
    lr = jnp.where(ok, lr, state.rate)
    # A spike cuts the rate at once, caps it for good below the rate that spiked
    # (sqrt(guard_cut) times it: the cut undone at most halfway, in log) and restarts the
    # statistics (the memory is kept).
    lr, applied, guard_state = owner.after_spike(lr, spike, settings, min_value, guard_state,
                                                 state.lr)
    # The shape (warmup, anneal) scales what is applied, outside the network (which decides
    # on its own rate): the first update of a run at a rate far too high can wreck a model
    # for good (a CNN's ReLUs die) before any statistic has seen it.
    factor = shape(state.count, warmup_steps, total_steps, anneal)
    applied_rate = applied * factor
    if estimating:  # this update's term, weighted by its applied rate times Adam's bias
      # correction times d / d_0 (Prodigy's weighting); not counted when not finite
      numerator, grad_sum = _estimate_sums(
          state, g, stats[5], jnp.where(ok, applied_rate * _bias_correction(state.count)
                                        * estimate / ESTIMATE_INIT, 0.0))
    else:
      numerator, grad_sum = state.numerator, state.grad_sum
    restart = lambda new, old: jnp.where(ok & ~spike, new, jnp.where(spike, 0, old))  # noqa
    new_state = LearnedControllerState(
        **owner.next_fields(state, lr * factor, ok), inner_state=inner_state, guard=guard_state,
        hidden=hidden,
        loss_levels=restart(stepped.loss_levels, state.loss_levels),
        best_level=restart(stepped.best_level, state.best_level),
        grad_sq=restart(stepped.grad_sq, state.grad_sq),
        prev_grad_sq=jnp.where(ok, grad_sq, 0.0),  # a non-finite update is no "previous"
        cosine_avg=restart(stepped.cosine_avg, state.cosine_avg),
        noise=restart(stepped.noise, state.noise),
        stats_count=jnp.where(spike, 0, jnp.where(ok, stepped.stats_count, state.stats_count)),
        inputs=jnp.where(ok, inputs, state.inputs),
        # Zeros in place of a non-finite update's samples (prev_grad_sq = 0 marks one; the next
        # update does not read them): stored as they are, they were copied twice each an
        # update, as XLA keeps the previous ones (read by the statistics) beside them; made
        # after the statistics, they are written over the previous ones.
        grad_sample=_zeroed_unless(g, ok), param_sample=_zeroed_unless(p, ok),
        rate=lr, estimate=estimate, numerator=numerator, grad_sum=grad_sum,
        param0=state.param0)
    return owner.step(direction, applied_rate), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


@v.checks_finite
def learned_controller(optimizer_factory: Callable[..., optax.GradientTransformation], *,
                       init_value: Optional[float] = None, weights: Any = None,
                       every: Optional[int] = None,
                       min_value: float = 1e-8, max_value: float = 10.0,
                       total_steps: Optional[int] = None, axis_name: Optional[str] = None,
                       guard: bool = True, guard_factor: float = 4.0, guard_cut: float = 0.1,
                       guard_nonfinite: int = 3, guard_skip: bool = True,
                       warmup_steps: Optional[int] = None, anneal: bool = True,
                       reset_hidden: bool = False,
                       d_coef: float = 1.0,
                       max_multiplier: Optional[float] = None
                       ) -> optax.GradientTransformationExtraArgs:
  r"""A learned learning-rate controller: a small GRU sets the rate from the training signal.

  The update is :math:`\alpha_t\, s_t\, u_t`: :math:`u_t` the inner
  optimizer's direction at learning rate 1, :math:`s_t` the schedule's shape
  (``shape``: a linear warmup over :math:`W` updates, then with ``total_steps``
  :math:`T` a cosine from 1 to 0 over :math:`[W, T]`) and
  :math:`\alpha_t = b_t\, m_t` a base times the network's multiplier.

  **The base** :math:`b_t` is ``init_value`` when given. Without it (the
  default) it is Prodigy's estimate :math:`\hat d_t` of the distance to a
  solution (Mishchenko & Defazio 2023), computed in graph on the sample the
  controller reads and starting at ``ESTIMATE_INIT``:

  .. math::
    \lambda_k = \frac{\hat d_k}{\hat d_0}\, \alpha_k s_k\, \mathrm{bc}_k, \quad
    r_t = \sum_{k<t} \beta_3^{t-k} \lambda_k \langle g_k, x_0 - x_k \rangle, \quad
    S_t = \sum_{k<t} \beta_3^{t-k} \lambda_k g_k, \quad
    \hat d_t = \max\left(\hat d_{t-1}, c\, \frac{r_t}{\|S_t\|_1}\right)

  with :math:`\beta_3 = \sqrt{0.999}`, :math:`\mathrm{bc}_k` Adam's bias
  correction and :math:`c` = ``d_coef`` (1 by default), as ``optax.contrib.prodigy``. So a
  network whose output is 0 (:math:`m_t = 1`) is Prodigy's rate under a
  warmup-cosine multiplier, the strongest no-tuning rule measured here: the
  network only learns what to add to it, and the run does not depend on any starting rate. The inner optimizer
  reads :math:`(\hat d_t / \hat d_0)\, g_t`, as Prodigy's Adam moments
  average :math:`\hat d_k g_k` (recent gradients weigh more while
  :math:`\hat d` grows): with Adam inside, no weight decay and a zero network
  the run is ``optax.contrib.prodigy`` under the same multiplier up to where
  Adam's :math:`\epsilon` sits (tested to 1e-4). Prodigy's decoupled weight
  decay is also scaled by Adam's bias correction; AdamW's is not. The estimate
  assumes an Adam-like direction, one that does not depend on the gradient's
  scale (Adam, AdamW, Lion, sign descent); give SGD an ``init_value``.

  **The multiplier.** Every ``every`` updates a gated recurrent unit (Cho et
  al. 2014) reads thirteen scale-free inputs computed in graph from the loss,
  the gradient and the parameters (``FEATURES``: the loss trend at three time
  scales and its rise above its best level, the gradient norm against its
  running average, the last step's norm over the parameters' norm, the cosine
  of successive gradients, a gradient-noise estimate, the progress through
  ``total_steps`` when given, its own log-multiplier, the base's growth) and
  changes the rate by a bounded step:

  .. math::
    (h_{k+1}, \Delta_k) = \mathrm{GRU}_\phi(h_k, x_k), \quad
    |\Delta_k| \le 0.1, \quad
    \alpha_{k+1} = \mathrm{clip}\left(\min\left(\alpha_k \frac{b_{k+1}}{b_k} e^{\Delta_k},
                                      M b_{k+1}\right), \alpha_{\min}, c_k\right)

  with :math:`M` = ``max_multiplier`` (by default 1.5 without ``total_steps`` and
  :math:`\infty` with it; only for the estimated base).

  The shape sits outside the network, like the guard: the very first updates at
  a rate far too high can wreck a model before any statistic has seen them (a
  CNN's ReLUs die, its loss falls back to chance and stays there), which no
  decision afterwards undoes. The gradient and parameter
  statistics are ratios, so they are read from a fixed sample of about
  ``SAMPLE_SIZE`` coordinates (``sample``; all of them in a smaller model):
  an update costs a few dozen scalar operations at any model size, and the
  state holds no copy of the parameters. The ceiling :math:`c` starts at
  :math:`\alpha_{\max}`; when the spike guard fires at rate :math:`\alpha`
  it cuts the rate to ``guard_cut`` :math:`\cdot\,\alpha` and lowers the
  ceiling to :math:`\sqrt{\text{guard\_cut}}\,\alpha` for the rest of the
  run, so the network may undo at most half the cut (in log) and never returns
  to a rate that blew up. The weights :math:`\phi` shipped
  with lrjax were meta-trained by evolution strategies on synthetic tasks only
  (``lrjax.meta.meta_train``; ``docs/learned_controller.md`` is their card:
  the task family, the command that reproduces them, the evaluation). The
  spike guard, non-finite skipping and counting, saturating counters, float32
  statistics and ``axis_name`` averaging are those of every stateful lrjax
  schedule.

  Args:
    optimizer_factory: ``learning_rate -> optax.GradientTransformation`` (``optax.adamw``, ...).
    init_value: ``None`` (the default) for Prodigy's estimate as the base, or a
      constant base rate > 0 (the network still moves the rate from it).
    weights: ``None`` for the shipped weights, a path to an ``.npz`` written by
      ``lrjax.meta.meta_train`` / ``save_weights``, or a dict of arrays.
    every: decide every this many updates (>= 1); the statistics see every update
      (they are scalars), the network runs only at a decision. ``None`` (the
      default): every ``total_steps // DECISIONS`` updates (at least 1), so a known
      horizon gets about ``DECISIONS`` decisions whatever its length; every update
      without ``total_steps``. The network's steps add up over its decisions: with
      a decision at every one of 1,000 updates it over-corrects where about 300
      (its horizon when its weights were chosen) do not (``benchmarks/README.md``,
      ``controller_dev.py``).
    min_value, max_value: the rate stays in ``[min_value, max_value]``.
    total_steps: the planned number of updates, if known (an input of the
      network: the progress); ``None`` works for any horizon.
    warmup_steps: the updates of the linear warmup :math:`W` (0: none); ``None``
      for ``total_steps // 20`` (``WARMUP_DIVISOR``), or 0 without ``total_steps``.
    anneal: with ``total_steps``, a cosine from 1 to 0 over :math:`[W, T]` in the
      shape (``False``: the warmup only, the network's own anneal).
    axis_name: average the loss and the statistics over this mapped axis so
      every replica decides alike.
    guard, guard_factor, guard_cut, guard_nonfinite, guard_skip: the spike
      guard (``lrjax._guard``), as in ``lrjax.hypergradient``, plus the ceiling
      above (none with ``guard=False``).
    reset_hidden: zero the network's memory before every decision (an ablation:
      ``benchmarks/learned_controller.py`` measures what the memory adds).
    d_coef: Prodigy's ``d_coef`` :math:`c`, a factor on the estimate (> 0; only
      without ``init_value``). The shipped weights were trained and chosen at 1; 1.5
      and 2 measured worse on the development set (``benchmarks/README.md``).
    max_multiplier: the network's rate is at most this many times the estimate
      (>= 1; only without ``init_value``). ``None`` (the default): 1.5
      (``NO_HORIZON_MAX_MULTIPLIER``) without ``total_steps``, no bound with it. Without
      a horizon there is no anneal to bring a raised rate back; on the development set
      the bound raised the share within 1.10x of tuned and cut the worst case there,
      while with a horizon a bound of 2 cost (``benchmarks/README.md``, item 23). Give a
      large value (``1e9``) for no bound.

  Returns:
    An ``optax.GradientTransformationExtraArgs``; call
    ``update(grads, state, params, value=loss)``. ``lrjax.current_lr`` reads the rate
    applied (``state.lr``: the rate ``state.rate`` times the shape);
    ``state.estimate`` is the base.

  Example:
    >>> import jax, jax.numpy as jnp, optax, lrjax
    >>> tx = lrjax.learned_controller(optax.adamw, total_steps=100)  # no rate to choose
    >>> params = jnp.ones(3)
    >>> state = tx.init(params)
    >>> loss_fn = lambda p: jnp.sum(p ** 2)
    >>> @jax.jit  # one compiled update; its decisions stay in the graph
    ... def step(params, state):
    ...   loss, grads = jax.value_and_grad(loss_fn)(params)
    ...   updates, state = tx.update(grads, state, params, value=loss)
    ...   return optax.apply_updates(params, updates), state
    >>> for _ in range(100):
    ...   params, state = step(params, state)
    >>> bool(loss_fn(params) < 0.1 * 3)
    True

  References:
    Andrychowicz et al., `Learning to learn by gradient descent by gradient descent
    <https://arxiv.org/abs/1606.04474>`_, NeurIPS 2016.
    Xu et al., `Learning an Adaptive Learning Rate Schedule
    <https://arxiv.org/abs/1909.09712>`_, 2019.
    Metz et al., `VeLO: Training Versatile Learned Optimizers by Scaling Up
    <https://arxiv.org/abs/2211.09760>`_, 2022.
    Mishchenko & Defazio, `Prodigy: An Expeditiously Adaptive Parameter-Free Learner
    <https://arxiv.org/abs/2306.06101>`_, ICML 2024.
    Cho et al., `Learning Phrase Representations using RNN Encoder-Decoder
    <https://arxiv.org/abs/1406.1078>`_, 2014.
  """
  fn = "learned_controller"
  owner = LROwner.build(fn, optimizer_factory)
  if total_steps is not None:
    v.integer(fn, "total_steps", total_steps, 1)
  if every is None:
    every = max(1, total_steps // DECISIONS) if total_steps is not None else 1
  v.integer(fn, "every", every, 1)
  v.positive(fn, "min_value", min_value)
  v.upper_bound(fn, "max_value", max_value, "min_value", min_value)
  if init_value is not None:
    v.positive(fn, "init_value", init_value)
    v.check(fn, "init_value", init_value,
            lambda a: (a >= min_value) & (a <= max_value), "in [min_value, max_value]")
  elif not min_value <= ESTIMATE_INIT <= max_value:
    raise ValueError(f"lrjax.{fn}: without init_value the rate starts at {ESTIMATE_INIT:g}, "
                     f"which must be in [min_value, max_value], got [{min_value}, {max_value}]")
  v.positive(fn, "d_coef", d_coef)
  if max_multiplier is not None:
    if init_value is not None:
      raise ValueError(f"lrjax.{fn}: max_multiplier bounds the rate over the estimate, which "
                       f"init_value replaces; give one of them, got init_value={init_value}, "
                       f"max_multiplier={max_multiplier}")
    v.check(fn, "max_multiplier", max_multiplier, lambda a: a >= 1, ">= 1")
  elif init_value is None and total_steps is None:
    max_multiplier = NO_HORIZON_MAX_MULTIPLIER
  if init_value is not None and d_coef != 1.0:
    raise ValueError(f"lrjax.{fn}: d_coef scales the estimate, which init_value replaces; "
                     f"give one of them, got init_value={init_value}, d_coef={d_coef}")
  anneal = _guard.flag(fn, "anneal", anneal)
  reset_hidden = _guard.flag(fn, "reset_hidden", reset_hidden)
  if warmup_steps is None:
    warmup_steps = total_steps // WARMUP_DIVISOR if total_steps is not None else 0
  v.integer(fn, "warmup_steps", warmup_steps, 0)
  settings = owner.guard_settings(guard, guard_factor, guard_cut, guard_nonfinite, guard_skip)
  return controller(owner, load_weights(weights, fn), init_value=init_value, every=every,
                    min_value=min_value, max_value=max_value, total_steps=total_steps,
                    axis_name=axis_name, settings=settings, warmup_steps=int(warmup_steps),
                    anneal=anneal, reset_hidden=reset_hidden, d_coef=d_coef,
                    max_multiplier=max_multiplier)
