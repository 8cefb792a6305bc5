"""Meta-training of the learned controller: evolution strategies on a synthetic task family.

``meta_train`` fits the weights of ``lrjax.learned_controller``:

1. **L-BFGS first** (``optax.lbfgs``, optional, off by default: ES starts from
   a zero output layer, which is the controller's rule alone): the GRU imitates a hand-made
   rule (``hand_rule``: raise the rate while successive gradients agree, lower
   it when they disagree or the loss rises above its best, anneal near the end
   of a known horizon) on inputs logged from runs of that rule. A deterministic
   least-squares objective, so a quasi-Newton method fits it in seconds.
2. **Antithetic evolution strategies** then refine the weights on the real
   objective. Each iteration draws one task (a structure, data, an
   initialisation, a horizon, a base optimizer and a starting rate), and every
   member of the population, ``θ ± σε`` for ``pairs`` directions ε, trains it
   from the same initialisation on the same batches (common random numbers);
   the population is ``vmap``-ped in one compiled program. Fitness is shaped by
   centered ranks; Adam steps on the estimate.

The meta-loss of one run judges where it ends, as the benchmarks do:

.. math::
  \\ell = \\tfrac12\\, c\\left(\\log \\frac{\\bar L_{\\text{end}}}{L_0}\\right)
        + \\tfrac12\\, c\\left(\\log \\frac{L^{\\text{held-out}}_T}{L_0}\\right)

with :math:`\\bar L_{\\text{end}}` the mean loss of the last tenth of the updates
(each on its fresh batch, before the step), :math:`L^{\\text{held-out}}_T` the
loss on held-out batches after the last update, :math:`L_0` the held-out loss at
initialisation and :math:`c` a clip to ``[LOG_FLOOR, LOG_CAP]``; a non-finite
value counts as ``LOG_CAP`` (a diverged run gets the worst score, never NaN).
Within an iteration every member trains the same draw, so dividing by a tuned
baseline of that draw (a constant there) would not change the centered ranks ES
follows: the end of the run is what it optimises.

The default family (``FAMILY``) is synthetic only, generated on the fly:
ill-conditioned noisy quadratics, linear and logistic regression, MLPs of
random width and activation (one or two hidden layers) and a small convnet on
random teacher networks, and deeper ReLU MLPs that memorise a small fixed set of
noisy labels (``memorise``: loss near zero at a well-chosen rate, far from it at a third
of that rate); batch sizes 8-64; horizons log-uniform over
100-2,000 updates (the horizon given to the controller in half the runs);
AdamW or SGD with momentum 0.9; for three AdamW draws in four the controller's own
estimate of its base rate (``init_value=None``, its default), else a starting rate
log-uniform over ±2 decades around a sensible value; the default shape (a warmup over a
tenth of a known horizon, then a cosine to 0). **No real data set is ever used**: ``lrjax.tasks``
are where the controller is judged.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from typing import Any, Callable, Mapping, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import _validation as v
from lrjax._numerics import strong_types
from lrjax.bench.runner import Progress
from lrjax.transforms import _learned
from lrjax.transforms._lr_owner import GuardSettings, LROwner

LOG_CAP = 3.0
LOG_FLOOR = -10.0
MIN_HORIZON, MAX_HORIZON = 100, 2000
#: The draws' horizon range by default (the shipped weights'): ``(shortest, longest)``.
HORIZONS = (MIN_HORIZON, MAX_HORIZON)
#: The warmup of a draw whose horizon is given: ``horizon // TRAIN_WARMUP_DIVISOR`` updates, the
#: shape the shipped weights were trained under (``learned_controller``'s default is now
#: ``_learned.WARMUP_DIVISOR``; this stays the shipped weights' recipe).
TRAIN_WARMUP_DIVISOR = 10
#: The rate the starting rates spread around (±``LR_SPREAD`` decades), per base optimizer.
SENSIBLE_LR = {"adamw": 3e-3, "sgdm": 3e-2}
LR_SPREAD = 2.0
OPTIMIZERS = tuple(SENSIBLE_LR)
#: Base optimizers whose draws may leave the base rate to the controller's estimate (Prodigy's
#: estimate assumes an Adam-like direction), and the share of their draws that do.
ESTIMATED = ("adamw",)
ESTIMATE_SHARE = 0.75
MAX_BATCH = 64
DIM = 16
HELD_OUT_BATCHES = 4

# A task: key -> (params, loss_fn(params, data_key) -> scalar loss on a fresh batch).
TaskFn = Callable[[jax.Array], tuple[Any, Callable[[Any, jax.Array], jax.Array]]]


# ---------------------------------------------------------------------------------------------
# The synthetic task family.

def _batch_mask(key):
  size = jnp.asarray([8, 16, 32, 64])[jax.random.randint(key, (), 0, 4)]
  return (jnp.arange(MAX_BATCH) < size).astype(jnp.float32)


def _masked_mean(values, mask):
  return jnp.sum(values * mask) / jnp.sum(mask)


def _inputs(key, scales):
  return jax.random.normal(key, (MAX_BATCH, DIM)) * jnp.broadcast_to(scales, (DIM,))[None, :]


def quadratic(key):
  """A noisy quadratic :math:`\\tfrac12 \\sum_i \\lambda_i (x_i - x^*_i - \\xi_i)^2`, condition
  number log-uniform in [10, 1e4], noise :math:`\\xi` from the batch."""
  k = jax.random.split(key, 5)
  dim = 32
  cond = jnp.exp(jax.random.uniform(k[0], (), minval=math.log(10), maxval=math.log(1e4)))
  lam = jnp.exp(jax.random.uniform(k[1], (dim,)) * jnp.log(cond)) / cond
  lam = lam * jnp.exp(jax.random.uniform(k[2], (), minval=-1.0, maxval=1.0))
  target = jax.random.normal(k[3], (dim,))
  noise = jax.random.uniform(k[4], (), minval=0.1, maxval=1.0)
  mask = _batch_mask(k[4])

  def loss_fn(x, data_key):
    xi = jax.random.normal(data_key, (MAX_BATCH, dim)) * noise
    xi = jnp.sum(xi * mask[:, None], 0) / jnp.sum(mask)
    return 0.5 * jnp.sum(lam * (x - target - xi) ** 2)

  return jnp.zeros((dim,)), loss_fn


def _regression_data(key):
  k = jax.random.split(key, 3)
  scales = jnp.exp(0.5 * jax.random.normal(k[0], (DIM,)))
  w = jax.random.normal(k[1], (DIM,)) / jnp.sqrt(DIM)
  return scales, w, _batch_mask(k[2])


def linear(key):
  """Linear regression on Gaussian inputs of random per-feature scales, noisy targets."""
  k = jax.random.split(key, 2)
  scales, w, mask = _regression_data(k[0])
  noise = jax.random.uniform(k[1], (), minval=0.05, maxval=0.5)

  def loss_fn(p, data_key):
    kx, ke = jax.random.split(data_key)
    x = _inputs(kx, scales)
    y = x @ w + noise * jax.random.normal(ke, (MAX_BATCH,))
    return _masked_mean((x @ p["w"] + p["b"] - y) ** 2, mask)

  return {"w": jnp.zeros((DIM,)), "b": jnp.zeros(())}, loss_fn


def logistic(key):
  """Logistic regression on labels drawn from a random linear teacher."""
  scales, w, mask = _regression_data(key)

  def loss_fn(p, data_key):
    kx, ky = jax.random.split(data_key)
    x = _inputs(kx, scales)
    y = jax.random.bernoulli(ky, jax.nn.sigmoid(3.0 * (x @ w))).astype(jnp.float32)
    return _masked_mean(optax.sigmoid_binary_cross_entropy(x @ p["w"] + p["b"], y), mask)

  return {"w": jnp.zeros((DIM,)), "b": jnp.zeros(())}, loss_fn


ACTIVATIONS = (jax.nn.relu, jnp.tanh, jax.nn.gelu)


def _dense_init(key, fan_in, fan_out):
  return jax.random.normal(key, (fan_in, fan_out)) / jnp.sqrt(fan_in)


def _mlp(depth):
  def task(key):
    k = jax.random.split(key, 10)
    width = jnp.asarray([16, 32, 64])[jax.random.randint(k[0], (), 0, 3)]
    unit_mask = (jnp.arange(64) < width).astype(jnp.float32)
    act = jax.random.randint(k[1], (), 0, len(ACTIVATIONS))
    classify = jax.random.bernoulli(k[2])
    mask = _batch_mask(k[3])
    t1, t2 = 2.0 * _dense_init(k[4], DIM, 32), _dense_init(k[5], 32, 4)
    sizes = [DIM] + [64] * depth + [4]
    params = {f"w{i}": _dense_init(k[6 + i], a, b) * (unit_mask[None, :] if i < depth else 1)
              * (unit_mask[:, None] if i > 0 else 1)
              for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))}
    params.update({f"b{i}": jnp.zeros((b,)) for i, b in enumerate(sizes[1:])})

    def loss_fn(p, data_key):
      x = _inputs(data_key, 1.0)
      target = jnp.tanh(x @ t1) @ t2
      h = x
      for i in range(depth):
        h = jax.lax.switch(act, ACTIVATIONS, h @ p[f"w{i}"] + p[f"b{i}"][None, :])
        h = h * unit_mask[None, :]
      out = h @ p[f"w{depth}"] + p[f"b{depth}"][None, :]
      ce = optax.softmax_cross_entropy_with_integer_labels(out, jnp.argmax(target, -1))
      mse = jnp.mean((out - target) ** 2, -1)
      return _masked_mean(jnp.where(classify, ce, mse), mask)

    return params, loss_fn
  task.__name__ = f"mlp{depth}"
  task.__doc__ = (f"An MLP with {depth} hidden layer(s) of width 16/32/64 and a random "
                  "activation on a random tanh teacher (regression or classification).")
  return task


def _patches(x):
  """The 3x3 'SAME' neighbourhoods of (B, 8, 8) images: (B, 8, 8, 9)."""
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1)))
  return jnp.stack([padded[:, i:i + 8, j:j + 8] for i in range(3) for j in range(3)], -1)


def _conv(patches, w):
  """A 3x3 convolution as one matmul over the patches (cheap under a ``vmap`` over weights)."""
  return jnp.einsum("bhwk,kc->bhwc", patches, w, precision=jax.lax.Precision.HIGHEST)


def conv(key):
  """A small convnet (3x3 conv, ReLU, 2x2 average pool, dense) on 8x8 images labelled by a
  random conv teacher."""
  k = jax.random.split(key, 5)
  mask = _batch_mask(k[0])
  tw = jax.random.normal(k[1], (9, 4)) / 3.0
  tv = _dense_init(k[2], 256, 4)
  params = {"conv": jax.random.normal(k[3], (9, 8)) / 3.0, "cb": jnp.zeros((8,)),
            "dense": _dense_init(k[4], 128, 4), "db": jnp.zeros((4,))}

  def loss_fn(p, data_key):
    x = _patches(jax.random.normal(data_key, (MAX_BATCH, 8, 8)))
    y = jnp.argmax(jnp.tanh(_conv(x, tw)).reshape(MAX_BATCH, -1) @ tv, -1)
    h = jax.nn.relu(_conv(x, p["conv"]) + p["cb"][None, None, None, :])
    h = h.reshape(MAX_BATCH, 4, 2, 4, 2, 8).mean((2, 4)).reshape(MAX_BATCH, -1)
    out = h @ p["dense"] + p["db"][None, :]
    return _masked_mean(optax.softmax_cross_entropy_with_integer_labels(out, y), mask)

  return params, loss_fn


MEMORISE_POINTS = 256


def _he_relu_mlp(keys, sizes, width, unit_mask):
  """Dense layers of ``sizes`` (hidden widths 64, of which the first ``width`` units live),
  He-initialised over the live units, layer ``i`` drawn from ``keys[i]``; biases zero."""
  hidden = len(sizes) - 2
  params = {f"w{i}": _dense_init(keys[i], a, b)
            * jnp.sqrt(2.0 * (64.0 / width if i > 0 else 1.0))  # He, over the live units
            * (unit_mask[None, :] if i < hidden else 1) * (unit_mask[:, None] if i > 0 else 1)
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))}
  params.update({f"b{i}": jnp.zeros((b,)) for i, b in enumerate(sizes[1:])})
  return params


def memorise(key):
  """A ReLU MLP of 3 or 4 hidden layers (width 32 or 64, He-initialised) on a fixed set of
  ``MEMORISE_POINTS`` random inputs whose labels (4 classes) come from a random tanh teacher
  with label noise of random strength: the batches are drawn from that set, so the network
  can drive its training loss towards zero, and how close it gets depends strongly on the
  rate (the shape of a small real data set trained for many epochs)."""
  k = jax.random.split(key, 11)
  depth = jax.random.randint(k[0], (), 3, 5)  # 3 or 4 hidden layers (a 4th masked to identity)
  width = jnp.asarray([32, 64])[jax.random.randint(k[1], (), 0, 2)]
  unit_mask = (jnp.arange(64) < width).astype(jnp.float32)
  x_all = jax.random.normal(k[2], (MEMORISE_POINTS, DIM))
  noise = jax.random.uniform(k[3], (), minval=0.0, maxval=1.0)
  logits = jnp.tanh(x_all @ _dense_init(k[4], DIM, 4) * 2.0) + noise * jax.random.normal(
      k[5], (MEMORISE_POINTS, 4))
  y_all = jnp.argmax(logits, -1)
  batch = jnp.asarray([16, 32, 64])[jax.random.randint(k[6], (), 0, 3)]
  mask = (jnp.arange(MAX_BATCH) < batch).astype(jnp.float32)
  params = _he_relu_mlp([k[7 + min(i, 3)] for i in range(5)], [DIM, 64, 64, 64, 64, 4], width,
                        unit_mask)

  def loss_fn(p, data_key):
    idx = jax.random.randint(data_key, (MAX_BATCH,), 0, MEMORISE_POINTS)
    h = x_all[idx]
    for i in range(4):
      out = jax.nn.relu(h @ p[f"w{i}"] + p[f"b{i}"][None, :]) * unit_mask[None, :]
      h = jnp.where((i < 3) | (depth > 3), out, h) if i > 0 else out
    out = h @ p["w4"] + p["b4"][None, :]
    return _masked_mean(optax.softmax_cross_entropy_with_integer_labels(out, y_all[idx]), mask)

  return params, loss_fn


DEEP_POINTS = 512


def deep(key):
  """A ReLU MLP of 5 hidden layers (width 32 or 64, He-initialised) classifying a fixed set of
  ``DEEP_POINTS`` correlated inputs into two classes by a mostly linear teacher, 2% of the
  labels flipped: a deep network on a small, nearly separable data set trained for many
  epochs, whose loss falls towards zero for as long as the rate stays up (not in the shipped
  weights' family: ``lrjax meta-train --structures``)."""
  k = jax.random.split(key, 12)
  width = jnp.asarray([32, 64])[jax.random.randint(k[0], (), 0, 2)]
  unit_mask = (jnp.arange(64) < width).astype(jnp.float32)
  mixing = jax.random.normal(k[1], (DIM, DIM)) / jnp.sqrt(DIM)
  x_all = jax.random.normal(k[2], (DEEP_POINTS, DIM)) @ (jnp.eye(DIM) + 2.0 * mixing)
  x_all = (x_all - x_all.mean(0)[None, :]) / x_all.std(0)[None, :]
  score = (x_all @ jax.random.normal(k[3], (DIM,))
           + jnp.tanh(x_all @ _dense_init(k[4], DIM, 8)) @ jax.random.normal(k[5], (8,)))
  y_all = (score > jnp.median(score)).astype(jnp.int32)
  y_all = jnp.where(jax.random.bernoulli(k[6], 0.02, (DEEP_POINTS,)), 1 - y_all, y_all)
  batch = jnp.asarray([16, 32, 64])[jax.random.randint(k[7], (), 0, 3)]
  mask = (jnp.arange(MAX_BATCH) < batch).astype(jnp.float32)
  params = _he_relu_mlp(jax.random.split(k[8], 6), [DIM] + [64] * 5 + [2], width, unit_mask)

  def loss_fn(p, data_key):
    idx = jax.random.randint(data_key, (MAX_BATCH,), 0, DEEP_POINTS)
    h = x_all[idx]
    for i in range(5):
      h = jax.nn.relu(h @ p[f"w{i}"] + p[f"b{i}"][None, :]) * unit_mask[None, :]
    out = h @ p["w5"] + p["b5"][None, :]
    return _masked_mean(optax.softmax_cross_entropy_with_integer_labels(out, y_all[idx]), mask)

  return params, loss_fn


#: The default synthetic task family: structure name -> task function.
FAMILY: dict[str, TaskFn] = {"quadratic": quadratic, "linear": linear, "logistic": logistic,
                             "mlp1": _mlp(1), "mlp2": _mlp(2), "conv": conv,
                             "memorise": memorise}
#: Every structure ``lrjax meta-train --structures`` and the development set can draw from:
#: ``FAMILY`` and those written after the shipped weights.
STRUCTURES: dict[str, TaskFn] = {**FAMILY, "deep": deep}


@dataclasses.dataclass(frozen=True)
class Draw:
  """One inner training run of the meta-objective."""
  structure: str
  optimizer: str
  seed: int
  horizon: int
  horizon_known: bool
  init_value: float  # the starting rate, when given (``estimate`` False)
  estimate: bool = False  # the controller estimates its base rate (``init_value`` unused)


def check_horizons(fn: str, horizons: Any) -> tuple[int, int]:
  """``horizons`` if it is a ``(shortest, longest)`` pair of integers with
  1 <= shortest <= longest, else a ``ValueError`` naming ``lrjax.{fn}``."""
  if not (isinstance(horizons, tuple) and len(horizons) == 2
          and all(isinstance(h, int) and not isinstance(h, bool) for h in horizons)
          and 1 <= horizons[0] <= horizons[1]):
    raise ValueError(f"lrjax.{fn}: horizons must be a tuple of two integers "
                     f"1 <= shortest <= longest, got horizons={horizons!r}")
  return horizons


def draw(rng: np.random.Generator, structures: tuple[str, ...],
         horizons: tuple[int, int] = HORIZONS) -> Draw:
  """A random inner run: structure, base optimizer, seed, horizon (log-uniform over
  ``horizons``) and starting rate (or, for AdamW in ``ESTIMATE_SHARE`` of draws, the
  controller's own estimate of its base)."""
  opt = OPTIMIZERS[rng.integers(len(OPTIMIZERS))]
  horizon = int(round(math.exp(rng.uniform(math.log(horizons[0]), math.log(horizons[1])))))
  d = Draw(structure=structures[rng.integers(len(structures))], optimizer=opt,
           seed=int(rng.integers(2**31 - 1)), horizon=horizon,
           horizon_known=bool(rng.integers(2)),
           init_value=float(SENSIBLE_LR[opt] * 10 ** rng.uniform(-LR_SPREAD, LR_SPREAD)))
  if opt in ESTIMATED:
    d = dataclasses.replace(d, estimate=bool(rng.uniform() < ESTIMATE_SHARE))
  return d


def base_optimizer(name: str) -> Callable[[Any], optax.GradientTransformation]:
  """The base optimizer of a draw, as a factory of the learning rate."""
  if name == "adamw":
    return lambda lr: optax.adamw(lr, weight_decay=1e-4)
  return lambda lr: optax.sgd(lr, momentum=0.9)


# ---------------------------------------------------------------------------------------------
# The inner run and the meta-objective.

def _log_ratio(loss, ref):
  r = jnp.log(jnp.maximum(loss, 1e-30) / ref)
  return jnp.clip(jnp.where(jnp.isfinite(r), r, LOG_CAP), LOG_FLOOR, LOG_CAP)


def run_meta_loss(task: TaskFn, optimizer: str, weights: Any, key: jax.Array,
                  horizon: jax.Array, horizon_known: jax.Array, init_value: jax.Array,
                  policy: Optional[Callable] = None, reset_hidden: bool = False,
                  trace: bool = False, estimate: bool = False,
                  decisions: Optional[int] = None, trace_length: int = MAX_HORIZON,
                  warmup_divisor: int = TRAIN_WARMUP_DIVISOR):
  """The meta-loss of one inner run (traceable; ``vmap`` it over ``weights``).

  With ``trace`` also returns the inputs and log-rate change of every update
  (padded to ``trace_length`` >= ``horizon``), for imitation. ``estimate``: the controller
  estimates its base rate (``init_value`` unused). The schedule's shape: a warmup over
  ``horizon // warmup_divisor`` updates of a known horizon (the shipped weights':
  ``TRAIN_WARMUP_DIVISOR``), then a cosine to 0. ``decisions``: ``None``, the network
  decides at every update; ``D``, every ``max(1, horizon // D)`` updates when the horizon is
  given (``learned_controller(every=None)`` with ``D = DECISIONS``).
  """
  init_key, data_key = jax.random.split(key)
  params, loss_fn = task(init_key)
  held_out = lambda p: jnp.mean(jnp.stack([  # noqa: E731
      loss_fn(p, jax.random.fold_in(data_key, 10**7 + i)) for i in range(HELD_OUT_BATCHES)]))
  ref = jnp.maximum(held_out(params), 1e-12)
  tx = _learned.controller(
      LROwner.build("meta_train", base_optimizer(optimizer)), weights,
      init_value=None if estimate else init_value,
      every=1 if decisions is None else jnp.where(  # type: ignore[arg-type]  # traced
          horizon_known, jnp.maximum(horizon // decisions, 1), 1),
      min_value=1e-8, max_value=10.0,
      total_steps=jnp.where(horizon_known, horizon, 0),  # type: ignore[arg-type]  # traced
      axis_name=None,
      settings=GuardSettings(), reset_hidden=reset_hidden,
      policy=policy, warmup_steps=jnp.where(horizon_known, horizon // warmup_divisor, 0),
      anneal=True)
  state = tx.init(params)
  xs = jnp.zeros((trace_length if trace else 1, _learned.NUM_FEATURES))
  ds = jnp.zeros((trace_length if trace else 1,))

  tail = jnp.maximum(horizon // 10, 1)  # the last tenth of the updates: where a run ends

  def body(t, carry):
    params, state, total, xs, ds = carry
    loss, grads = jax.value_and_grad(loss_fn)(params, jax.random.fold_in(data_key, t))
    updates, new_state = tx.update(grads, state, params, value=loss)
    if trace:
      xs = xs.at[t].set(new_state.inputs)
      ds = ds.at[t].set(jnp.log(new_state.rate / state.rate))
    return (optax.apply_updates(params, updates), new_state,
            total + jnp.where(t >= horizon - tail, loss, 0.0), xs, ds)

  params, state, total, xs, ds = jax.lax.fori_loop(
      0, horizon, body, (params, state, jnp.zeros(()), xs, ds))
  meta = 0.5 * _log_ratio(total / tail, ref) + 0.5 * _log_ratio(held_out(params), ref)
  return (meta, xs, ds) if trace else meta


class _Flat:
  """Weights dict <-> one flat float32 vector."""

  def __init__(self, weights):
    self.keys = _learned.WEIGHT_KEYS
    self.shapes = [tuple(np.shape(weights[k])) for k in self.keys]
    self.sizes = [int(np.prod(s)) for s in self.shapes]

  @classmethod
  def of_shapes(cls, shapes):
    return cls({k: np.zeros(s) for k, s in zip(_learned.WEIGHT_KEYS, shapes)})

  def flat(self, weights):
    return jnp.concatenate([jnp.ravel(jnp.asarray(weights[k], jnp.float32)) for k in self.keys])

  def unflat(self, vec):
    out, i = {}, 0
    for k, shape, size in zip(self.keys, self.shapes, self.sizes):
      out[k] = vec[..., i:i + size].reshape(vec.shape[:-1] + shape)
      i += size
    return out


@functools.lru_cache(maxsize=256)
def _population_program(task: TaskFn, optimizer: str, shapes: tuple, policy, reset_hidden: bool,
                        estimate: bool, decisions: Optional[int] = None,
                        warmup_divisor: int = TRAIN_WARMUP_DIVISOR):
  """``jit(vmap(run_meta_loss))`` over a population of flat weights, for one task function and
  inner optimizer: built once per process, so every ``meta_train``/``evaluate`` call (and every
  population size) shares one traced function and its compiled programs."""
  flat = _Flat.of_shapes(shapes)

  def one(vec, key, horizon, known, lr0):
    return run_meta_loss(task, optimizer, flat.unflat(vec), key, horizon, known, lr0,
                         policy=policy, reset_hidden=reset_hidden, estimate=estimate,
                         decisions=decisions, warmup_divisor=warmup_divisor)
  return jax.jit(jax.vmap(one, in_axes=(0, None, None, None, None)))


def _compiled_population(family: Mapping[str, TaskFn], flat: _Flat, policy=None,
                         reset_hidden=False, decisions: Optional[int] = None,
                         warmup_divisor: int = TRAIN_WARMUP_DIVISOR):
  """``draw -> jit(vmap over a population of flat weights)`` for its task and optimizer."""
  return lambda d: _population_program(family[d.structure], d.optimizer, tuple(flat.shapes),
                                       policy, reset_hidden, d.estimate, decisions,
                                       warmup_divisor)


def evaluate(weights: Any, draws: list[Draw], family: Optional[Mapping[str, TaskFn]] = None,
             policy: Optional[Callable] = None, reset_hidden: bool = False,
             decisions: Optional[int] = None,
             warmup_divisor: int = TRAIN_WARMUP_DIVISOR) -> np.ndarray:
  """The meta-loss of ``weights`` on each of ``draws`` (a fixed validation set);
  ``decisions`` and ``warmup_divisor`` as in ``run_meta_loss``.

  Its programs are built once per process (``_population_program``) and reused by every call.
  """
  family = FAMILY if family is None else family
  flat = _Flat(weights)
  get = _compiled_population(family, flat, policy, reset_hidden, decisions, warmup_divisor)
  vec = flat.flat(weights)[None]
  return np.asarray([float(get(d)(
      vec, jax.random.PRNGKey(d.seed), d.horizon, d.horizon_known, d.init_value)[0])
      for d in draws])


def validation_draws(n: int = 12, seed: int = 10_000,
                     structures: tuple[str, ...] = tuple(FAMILY),
                     horizons: tuple[int, int] = HORIZONS) -> list[Draw]:
  """``n`` fixed draws (seeds apart from any meta-training iteration's) for validation."""
  rng = np.random.default_rng(seed)
  return [draw(rng, structures, horizons) for _ in range(n)]


# ---------------------------------------------------------------------------------------------
# L-BFGS: imitation of a hand-made rule.

def hand_rule(weights: Any, hidden: Any, x: jax.Array) -> tuple[Any, jax.Array]:
  """A hand-made controller on the same inputs (the imitation target; ``weights`` unused).

  :math:`\\Delta = 0.1 \\tanh(3 c - 0.3 - 2\\,\\mathrm{relu}(b - 1.8) - 4\\, h\\,\\mathrm{relu}(p - 0.75))`
  with :math:`c` the smoothed cosine of successive gradients, :math:`b` the
  rise of the loss above its best (1.8 is a rise of 5%), :math:`p` the
  progress and :math:`h` 1 when the horizon is known: Kesten's (1958) rule
  that grows the step while successive gradients agree, plus a brake on a
  rising loss and an anneal over the last quarter of a known horizon.
  """
  i = _learned.FEATURES.index
  z = (3.0 * x[i("cosine_avg")] - 0.3 - 2.0 * jax.nn.relu(x[i("above_best")] - 1.8)
       - 4.0 * x[i("has_horizon")] * jax.nn.relu(x[i("progress")] - 0.75))
  return hidden, _learned.MAX_LOG_STEP * jnp.tanh(z)


@functools.lru_cache(maxsize=256)
def _hand_rule_trace(task: TaskFn, optimizer: str, estimate: bool, length: int):
  """``jit(run_meta_loss)`` of the hand rule with its trace padded to ``length``, once per
  task function, optimizer, base and length."""
  return jax.jit(lambda weights, key, h, known, lr0: run_meta_loss(
      task, optimizer, weights, key, h, known, lr0, policy=hand_rule, trace=True,
      estimate=estimate, trace_length=length))


def imitation_data(draws: list[Draw], family: Mapping[str, TaskFn], hidden_size: int):
  """Inputs and the hand rule's log-rate changes along runs of the hand rule."""
  dummy = _learned.init_weights(jax.random.PRNGKey(0), hidden_size)
  length = max(d.horizon for d in draws)  # every trace padded to the longest draw's
  xs, ds, masks = [], [], []
  for d in draws:
    _, x, delta = _hand_rule_trace(family[d.structure], d.optimizer, d.estimate, length)(
        dummy, jax.random.PRNGKey(d.seed), d.horizon, d.horizon_known, d.init_value)
    xs.append(x)
    ds.append(jax.vmap(lambda xi: hand_rule(None, None, xi)[1])(x))
    masks.append((jnp.arange(length) < d.horizon).astype(jnp.float32))
  return jnp.stack(xs), jnp.stack(ds), jnp.stack(masks)


def fit_by_lbfgs(weights: Any, xs: jax.Array, targets: jax.Array, masks: jax.Array,
                 steps: int = 150) -> tuple[Any, list[float]]:
  """Fits the GRU's outputs to ``targets`` along ``xs`` by ``optax.lbfgs`` (least squares)."""
  flat = _Flat(weights)
  step, opt = _lbfgs_step(tuple(flat.shapes))
  vec = flat.flat(weights)
  state = strong_types(opt.init(vec))
  history = []
  for _ in range(steps):
    vec, state, value = step(vec, state, xs, targets, masks)
    history.append(float(value))
  return flat.unflat(vec), history


@functools.lru_cache(maxsize=16)
def _lbfgs_step(shapes: tuple):
  """One jitted ``optax.lbfgs`` step of the imitation fit, the data as arguments: compiled
  once per weight shape (and data shape), not once per fit."""
  flat = _Flat.of_shapes(shapes)
  opt = optax.lbfgs()

  def objective(vec, xs, targets, masks):
    w = flat.unflat(vec)

    def seq(x, m, tgt):
      def step(h, xi):
        h, delta = _learned.gru_step(w, h, xi)
        return h, delta
      _, deltas = jax.lax.scan(step, jnp.zeros((w["w_hidden"].shape[0],)), x)
      return jnp.sum(m * (deltas - tgt) ** 2) / jnp.sum(m)
    return jnp.mean(jax.vmap(seq)(xs, masks, targets)) / _learned.MAX_LOG_STEP ** 2

  @jax.jit
  def step(vec, state, xs, targets, masks):
    fn = lambda vec: objective(vec, xs, targets, masks)  # noqa: E731
    value, grad = optax.value_and_grad_from_state(fn)(vec, state=state)
    updates, state = opt.update(grad, state, vec, value=value, grad=grad, value_fn=fn)
    return optax.apply_updates(vec, updates), state, value
  return step, opt


# ---------------------------------------------------------------------------------------------
# Evolution strategies.

@dataclasses.dataclass
class MetaTrainResult:
  """What ``meta_train`` returns."""
  weights: dict[str, np.ndarray]
  history: list[float]  # the population's mean meta-loss at each ES iteration.
  lbfgs_history: list[float]  # the imitation loss at each L-BFGS step ([] without L-BFGS).
  validation: list[tuple[int, float]]  # (ES iteration, mean meta-loss on validation draws).
  wall_time: float
  iterations: int
  final_weights: dict[str, np.ndarray]  # the weights after the last iteration.
  best_iteration: int  # the validation point ``weights`` come from (the last without one).


def _centered_ranks(x: np.ndarray) -> np.ndarray:
  ranks = np.empty(len(x))
  ranks[np.argsort(x, kind="stable")] = np.arange(len(x))
  return ranks / (len(x) - 1) - 0.5


class ESState(NamedTuple):
  """The state of antithetic evolution strategies over flat weights (``es_init``,
  ``es_update``): a pytree of arrays, which ``meta_train``'s checkpoint saves leaf by leaf.

  Attributes:
    theta: the current weights, flat, float32.
    adam: the state of the optimizer of the ES gradient estimate (Adam) over ``theta``.
    iteration: ES iterations done.
    best_theta: the weights of the best validation point so far (``theta`` before any).
    best_loss: their validation meta-loss (∞ before any).
    best_iteration: the iteration of that validation point.
  """
  theta: np.ndarray
  adam: Any
  iteration: np.ndarray
  best_theta: np.ndarray
  best_loss: np.ndarray
  best_iteration: np.ndarray


def es_init(theta: Any, optimizer: optax.GradientTransformation) -> ESState:
  """The ES state at flat weights ``theta``, before any iteration."""
  theta = np.asarray(theta, np.float32)
  return ESState(theta=theta, adam=optimizer.init(jnp.asarray(theta)),
                 iteration=np.asarray(0), best_theta=theta, best_loss=np.asarray(math.inf),
                 best_iteration=np.asarray(0))


def es_population(state: ESState, eps: np.ndarray, sigma: float) -> np.ndarray:
  r"""The antithetic population :math:`\theta \pm \sigma \varepsilon_i` (the ``+`` half
  first) for perturbations ``eps`` of shape ``(pairs, size)``."""
  return np.concatenate([state.theta + sigma * eps, state.theta - sigma * eps])


@functools.partial(jax.jit, static_argnums=0)
def _optimizer_step(optimizer, theta, grad, opt_state):
  updates, opt_state = optimizer.update(grad, opt_state, theta)
  return optax.apply_updates(theta, updates), opt_state


def es_update(state: ESState, eps: np.ndarray, losses: np.ndarray, sigma: float,
              optimizer: optax.GradientTransformation) -> ESState:
  r"""One ES step from the population's meta-losses (``es_population``'s order): the
  antithetic estimate of the smoothed meta-loss's gradient on centered ranks :math:`u_i`,

  .. math::
    \hat g = \frac{1}{2 P \sigma} \sum_{i=1}^{P} (u_i^+ - u_i^-)\, \varepsilon_i,

  then one step of ``optimizer`` (Adam) on it. ``meta_train`` runs ``es_population``,
  the inner runs, ``es_update`` and, every ``validate_every`` iterations, ``es_validated``.

  Args:
    state: the ES state.
    eps: the perturbations, ``(pairs, size)``.
    losses: the meta-loss of each member of ``es_population(state, eps, sigma)``.
    sigma: the perturbation scale :math:`\sigma`.
    optimizer: the step on :math:`\hat g` (``optax.adam(learning_rate)`` in ``meta_train``);
      the same object at every iteration (its step is compiled once per object).

  Returns:
    The state one iteration on.

  Example:
    >>> import numpy as np, optax, lrjax.meta as meta
    >>> sgd = optax.sgd(0.1)
    >>> state = meta.es_init(np.zeros(2), sgd)
    >>> for i in range(200):  # minimise |theta - 1|^2 by ES alone
    ...   eps = np.random.default_rng(i).normal(size=(4, 2))
    ...   population = meta.es_population(state, eps, 0.1)
    ...   state = meta.es_update(state, eps, np.sum((population - 1) ** 2, 1), 0.1, sgd)
    >>> bool(np.all(np.abs(state.theta - 1) < 0.2))
    True

  References:
    Salimans et al., `Evolution Strategies as a Scalable Alternative to Reinforcement
    Learning <https://arxiv.org/abs/1703.03864>`_, 2017 (antithetic pairs, centered ranks).
  """
  pairs = len(eps)
  shaped = _centered_ranks(losses)
  grad = (shaped[:pairs] - shaped[pairs:]) @ eps / (2 * pairs * sigma)
  theta, adam = _optimizer_step(optimizer, jnp.asarray(state.theta),
                                jnp.asarray(grad, jnp.float32), state.adam)
  return state._replace(theta=np.asarray(theta), adam=adam, iteration=state.iteration + 1)


def es_validated(state: ESState, loss: float) -> ESState:
  """The state after a validation of ``state.theta`` at meta-loss ``loss``: the best point
  kept (the first of equals)."""
  if loss < state.best_loss:
    return state._replace(best_theta=np.array(state.theta), best_loss=np.asarray(loss),
                          best_iteration=np.asarray(state.iteration))
  return state


def _save_checkpoint(path: str, state: ESState, logs: dict[str, Any]) -> None:
  """The ES state (each leaf under its pytree path) and the logs, in one ``.npz`` written
  atomically."""
  leaves = {jax.tree_util.keystr(k): np.asarray(x)
            for k, x in jax.tree_util.tree_flatten_with_path(state)[0]}
  arrays = {f"state{k}": x for k, x in leaves.items()}
  arrays.update({f"log_{k}": np.asarray(x) for k, x in logs.items()})
  tmp = path + ".tmp.npz"
  np.savez(tmp, **arrays)  # type: ignore[arg-type]  # NumPy's stub types **kwds as allow_pickle
  os.replace(tmp, path)


def _load_checkpoint(path: str, like: ESState, fn: str) -> tuple[ESState, dict[str, Any]]:
  """``_save_checkpoint``'s state, restored into the structure of ``like``, and the logs."""
  paths = [jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(like)[0]]
  with np.load(path, allow_pickle=False) as ck:
    missing = [k for k in paths if f"state{k}" not in ck.files]
    if missing:
      raise ValueError(f"lrjax.{fn}: checkpoint {path!r} was written for another ES state "
                       f"(missing {', '.join(missing[:3])}): remove it or name another")
    leaves = [ck[f"state{k}"] for k in paths]
    logs = {k[len("log_"):]: ck[k] for k in ck.files if k.startswith("log_")}
  state = jax.tree.unflatten(jax.tree.structure(like), leaves)
  return state._replace(adam=jax.tree.map(jnp.asarray, state.adam)), logs


def meta_train(*, iterations: int = 1500, pairs: int = 8, sigma: float = 0.02,
               learning_rate: float = 0.003, seed: int = 0, hidden_size: int = 16,
               lbfgs_steps: int = 0, imitation_runs: int = 24,
               task_family: Union[None, TaskFn, Mapping[str, TaskFn]] = None,
               checkpoint: Optional[str] = None, checkpoint_every: int = 25,
               validate_every: int = 100, validation: Optional[list[Draw]] = None,
               init_weights: Any = None, progress: bool = True,
               log: Optional[Callable[[str], None]] = None,
               decisions: Optional[int] = None,
               horizons: tuple[int, int] = HORIZONS,
               warmup_divisor: int = TRAIN_WARMUP_DIVISOR) -> MetaTrainResult:
  """Meta-trains the learned controller's weights: L-BFGS imitation, then antithetic ES.

  Args:
    iterations: ES iterations (each trains ``2 * pairs`` inner runs in one program).
    pairs: antithetic pairs :math:`\\pm\\varepsilon` per iteration.
    sigma: the perturbation scale :math:`\\sigma`.
    learning_rate: Adam's step on the ES gradient estimate.
    seed: every random choice (tasks, perturbations, initial weights) follows from it.
    hidden_size: the GRU's units.
    lbfgs_steps: L-BFGS steps of the imitation fit (0: start ES from random weights).
    imitation_runs: runs of the hand rule whose inputs the imitation fits.
    task_family: ``None`` for ``FAMILY``; a task function ``key -> (params,
      loss_fn(params, data_key))`` (``loss_fn`` draws a fresh batch from
      ``data_key``), or a dict of them (one compiled program each).
    checkpoint: an ``.npz`` path: written every ``checkpoint_every`` iterations
      and resumed from when it exists (same settings: the run continues exactly).
    validate_every: evaluate on the validation draws every this many iterations (0:
      never); the weights returned are those of the best validation point (ES is
      noisy: the last iterate is not always the best).
    validation: the validation draws (default ``validation_draws()``, on the family's structures).
    init_weights: start from these weights instead (skips L-BFGS).
    progress: a progress bar (``rich`` on a terminal) with the meta-loss.
    log: where to write one line per validation (default: nothing).
    decisions: ``None`` (the shipped weights): the network decides at every update of
      every draw; ``D``: in a draw whose horizon is given, every ``max(1, horizon // D)``
      updates, as ``learned_controller(every=None)`` decides at inference (``D =
      _learned.DECISIONS``), validation included.
    horizons: ``(shortest, longest)``: each draw's horizon is log-uniform over it (the
      default validation draws too); the shipped weights saw 100 to 2,000 updates.
    warmup_divisor: in a draw whose horizon is given, the warmup lasts ``horizon //
      warmup_divisor`` updates (the shipped weights': 10; ``learned_controller``'s default
      at inference: ``_learned.WARMUP_DIVISOR``, 20).

  Returns:
    A ``MetaTrainResult``: ``weights`` at the best validation point (the last
    iterate without validation); ``save_weights(path, result.weights)`` writes the file
    ``learned_controller(weights=path)`` reads.

  Example:
    >>> import lrjax.meta as meta
    >>> family = {"quadratic": meta.quadratic}
    >>> result = meta.meta_train(iterations=2, pairs=2, lbfgs_steps=0, validate_every=0,
    ...                          task_family=family, progress=False)
    >>> len(result.history)
    2
  """
  fn = "meta_train"
  for name, value, lowest in (("iterations", iterations, 0), ("pairs", pairs, 1),
                              ("hidden_size", hidden_size, 1), ("lbfgs_steps", lbfgs_steps, 0),
                              ("imitation_runs", imitation_runs, 1),
                              ("checkpoint_every", checkpoint_every, 1),
                              ("validate_every", validate_every, 0),
                              ("warmup_divisor", warmup_divisor, 1)):
    v.integer(fn, name, value, lowest)
  if decisions is not None:
    v.integer(fn, "decisions", decisions, 1)
  check_horizons(fn, horizons)
  for name, number in (("sigma", sigma), ("learning_rate", learning_rate)):
    if not (isinstance(number, (int, float)) and math.isfinite(number) and number > 0):
      raise ValueError(f"lrjax.{fn}: {name} must be a finite number > 0, got {name}={number!r}")
  if task_family is None:
    family = FAMILY
  elif callable(task_family):
    family = {"user": task_family}
  elif isinstance(task_family, Mapping) and task_family and all(
      callable(f) for f in task_family.values()):
    family = dict(task_family)
  else:
    raise ValueError(f"lrjax.{fn}: task_family must be None, a task function or a dict of "
                     f"them, got {task_family!r}")
  structures = tuple(family)
  if validation is None:
    validation = (validation_draws(structures=structures, horizons=horizons) if validate_every
                  else [])
  start = time.perf_counter()
  key = jax.random.PRNGKey(seed)
  weights = (_learned.init_weights(key, hidden_size) if init_weights is None
             else _learned.load_weights(init_weights, fn))
  flat = _Flat(weights)
  lbfgs_history: list[float] = []
  resumed = checkpoint is not None and os.path.exists(checkpoint)
  if not resumed and init_weights is None and lbfgs_steps > 0:
    rng = np.random.default_rng([seed, 1])
    draws = [draw(rng, structures, horizons) for _ in range(imitation_runs)]
    xs, ds, masks = imitation_data(draws, family, hidden_size)
    weights, lbfgs_history = fit_by_lbfgs(weights, xs, ds, masks, lbfgs_steps)
  adam = optax.adam(learning_rate)
  state = es_init(flat.flat(weights), adam)
  history: list[float] = []
  val_history: list[tuple[int, float]] = []
  if resumed:  # checkpoint is a path
    state, logs = _load_checkpoint(str(checkpoint), state, fn)
    history = logs["history"].tolist()
    lbfgs_history = logs["lbfgs_history"].tolist()
    val_history = [(int(i), float(x)) for i, x in logs["validation"].tolist()]
  first = int(state.iteration)
  get = _compiled_population(family, flat, decisions=decisions, warmup_divisor=warmup_divisor)

  def validate(state):
    i = int(state.iteration)
    loss = float(np.mean(evaluate(flat.unflat(jnp.asarray(state.theta)), validation, family,
                                  decisions=decisions, warmup_divisor=warmup_divisor)))
    val_history.append((i, loss))
    state = es_validated(state, loss)
    if log is not None:
      log(f"iteration {i}: validation meta-loss {loss:.4f}"
          + (" (best)" if int(state.best_iteration) == i else ""))
    return state

  if validate_every and not resumed:
    state = validate(state)
  # The bar on a terminal only: off one, the validation lines are the log.
  bar = Progress(iterations - first, enabled=progress and iterations > first, lines=False)
  for i in range(first, iterations):
    d = draw(np.random.default_rng([seed, 2, i]), structures, horizons)
    eps = np.asarray(jax.random.normal(jax.random.PRNGKey(seed * 1_000_003 + i),
                                       (pairs, state.theta.size)))
    losses = np.asarray(get(d)(
        jnp.asarray(es_population(state, eps, sigma), jnp.float32), jax.random.PRNGKey(d.seed),
        d.horizon, d.horizon_known, d.init_value))
    state = es_update(state, eps, losses, sigma, adam)
    history.append(float(np.mean(losses)))
    bar.begin(f"meta-train: meta-loss {float(np.mean(history[-25:])):.4f}")
    bar.finish("")
    if validate_every and (i + 1) % validate_every == 0:
      state = validate(state)
    if checkpoint is not None and ((i + 1) % checkpoint_every == 0 or i + 1 == iterations):
      _save_checkpoint(checkpoint, state, {
          "history": np.asarray(history), "lbfgs_history": np.asarray(lbfgs_history),
          "validation": np.asarray(val_history).reshape(-1, 2)})
  as_dict = lambda t: {k: np.asarray(x) for k, x in flat.unflat(jnp.asarray(t)).items()}  # noqa
  chosen, at = ((state.best_theta, int(state.best_iteration)) if val_history
                else (state.theta, iterations))
  return MetaTrainResult(weights=as_dict(chosen), history=history,
                         lbfgs_history=lbfgs_history, validation=val_history,
                         wall_time=time.perf_counter() - start, iterations=iterations,
                         final_weights=as_dict(state.theta), best_iteration=at)


save_weights = _learned.save_weights
load_weights = _learned.load_weights
