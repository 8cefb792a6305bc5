"""The learning-rate range test, compiled into one ``lax.scan``."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import _validation as v


@dataclasses.dataclass(frozen=True)
class FindLRResult:
  """What ``find_lr`` measured.

  Attributes:
    lrs: the learning rate of each step (``num_steps``).
    losses: the loss seen at each step (NaN after ``stopped_at``).
    smoothed_losses: the debiased exponential moving average of the losses.
    stopped_at: the first step whose smoothed loss exceeded ``diverge_factor``
      times the best, or ``None`` when the sweep never diverged.
    suggestions: ``{"steepest", "minimum", "valley"}`` -> suggested learning rate.
    suggestion: the default suggestion ("valley").
  """
  lrs: np.ndarray
  losses: np.ndarray
  smoothed_losses: np.ndarray
  stopped_at: Optional[int]
  suggestions: dict
  suggestion: float

  def plot(self, path: Optional[str] = None, ax: Any = None) -> Any:
    """Smoothed loss against the learning rate (log x), suggestions marked."""
    from lrjax.plotting import line_plot
    ok = np.isfinite(self.smoothed_losses)
    labels = {"steepest": "steepest descent", "minimum": "minimum / 10", "valley": "valley"}
    marks = [(f"{labels.get(name, name)}: {lr:.2e}", lr, {"color": color})
             for (name, lr), color in zip(self.suggestions.items(), ("C1", "C2", "C3"))
             if np.isfinite(lr)]
    return line_plot({"loss": (self.lrs[ok], self.losses[ok]),
                      "smoothed loss": (self.lrs[ok], self.smoothed_losses[ok])},
                     xlabel="learning rate", ylabel="loss", title="learning-rate range test",
                     path=path, ax=ax, log_x=True,
                     styles={"loss": {"color": "0.75", "linewidth": 1},
                             "smoothed loss": {"linewidth": 1.8}},
                     vlines=marks, legend="inside")


def _valley(lrs: np.ndarray, losses: np.ndarray) -> float:
  """fastai's "valley": a point 1/2 of the way along the longest decreasing run."""
  n = len(losses)
  if n < 2:
    return float("nan")
  lds = [1] * n
  max_start = max_end = 0
  for i in range(1, n):
    for j in range(i):
      if losses[i] < losses[j] and lds[i] < lds[j] + 1:
        lds[i] = lds[j] + 1
      if lds[max_end] < lds[i]:
        max_end = i
        max_start = max_end - lds[max_end]
  sections = (max_end - max_start) / 3
  return float(lrs[max_start + int(sections) + int(sections / 2)])


def suggest(lrs: np.ndarray, smoothed: np.ndarray) -> dict:
  """The three suggestion rules on the finite part of a sweep.

  The first tenth and the last twentieth of that part are left out, as
  torch-lr-finder skips its start and end: the debiased average of the first
  few losses is noise, and the last points are already diverging.
  """
  ok = np.isfinite(smoothed)
  lrs, smoothed = lrs[ok], smoothed[ok]
  n = len(lrs)
  lrs, smoothed = lrs[n // 10:n - n // 20], smoothed[n // 10:n - n // 20]
  if len(lrs) < 3:
    nan = float("nan")
    return {"steepest": nan, "minimum": nan, "valley": nan}
  slopes = np.gradient(smoothed, np.log(lrs))
  return {"steepest": float(lrs[int(np.argmin(slopes))]),
          "minimum": float(lrs[int(np.argmin(smoothed))] / 10),
          "valley": _valley(lrs, smoothed)}


@functools.lru_cache(maxsize=16)
def _compiled(loss_fn, optimizer, lrs: tuple, smoothing: float, diverge_factor: float):
  """The jitted init, step and whole-sweep functions for one configuration.

  Cached, so calling ``find_lr`` again with the same loss function and
  settings (new parameters or batches) compiles nothing new.
  """
  lr_table = jnp.asarray(lrs, jnp.float32)
  tx = optax.inject_hyperparams(optimizer)(learning_rate=lambda count: lr_table[count])

  def init(params):
    return (params, tx.init(params), jnp.float32(0.0), jnp.float32(jnp.inf), jnp.int32(0),
            jnp.asarray(False))

  def step(carry, batch):
    params, opt_state, avg, best, index, stopped = carry
    loss, grads = jax.value_and_grad(loss_fn)(params, batch)
    loss = jnp.asarray(loss, jnp.float32)
    avg = smoothing * avg + (1 - smoothing) * loss
    smoothed = avg / (1 - smoothing ** (index + 1).astype(jnp.float32))
    diverged = ~jnp.isfinite(smoothed) | (smoothed > diverge_factor * best)
    stopped = stopped | diverged
    best = jnp.where(stopped, best, jnp.minimum(best, smoothed))
    updates, new_state = tx.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(stopped, b, a), new, old)  # noqa: E731
    carry = (keep(new_params, params), keep(new_state, opt_state), avg, best, index + 1, stopped)
    nan = jnp.float32(jnp.nan)
    return carry, (jnp.where(stopped, nan, loss), jnp.where(stopped, nan, smoothed), stopped)

  def sweep(carry, batches):
    return jax.lax.scan(step, carry, batches)[1]

  return jax.jit(init), jax.jit(step), jax.jit(sweep)


@v.checks_finite(data=("params", "batches"))
def find_lr(loss_fn: Callable[[Any, Any], jax.Array], params: Any, batches: Any,
            optimizer: Callable[..., optax.GradientTransformation] = optax.adam,
            min_lr: float = 1e-7, max_lr: float = 10.0, num_steps: int = 100,
            mode: str = "exponential", smoothing: float = 0.98,
            diverge_factor: float = 4.0) -> FindLRResult:
  r"""Learning-rate range test: raise the LR every step and watch the loss.

  Step :math:`i` of :math:`N` trains at :math:`\eta_i = \eta_{min}
  (\eta_{max}/\eta_{min})^{i/(N-1)}` (exponential) or linearly between them.
  The loss is smoothed by a debiased EMA, :math:`a_i = \beta a_{i-1} +
  (1-\beta) L_i`, :math:`\bar L_i = a_i / (1 - \beta^{i+1})`; the sweep stops
  at the first :math:`\bar L_i > k \min_{j \le i} \bar L_j` (fastai and
  Lightning use :math:`k = 4`, torch-lr-finder 5) or a non-finite loss: later
  entries are NaN and no further step changes the parameters.

  Suggestions: "steepest" (most negative slope of :math:`\bar L` against
  :math:`\log\eta`), "minimum" (the LR at the minimum, divided by 10) and
  "valley" (fastai's default: along the longest decreasing run of
  :math:`\bar L`, a point half-way in its middle third).

  With ``batches`` a pytree (an array, a tuple or dict of arrays) whose leaves
  have leading axis ``num_steps`` the whole sweep is one compiled ``lax.scan``;
  with a list, generator or iterator it runs one jitted step per batch. The caller's ``params`` are not modified.

  Args:
    loss_fn: ``(params, batch) -> scalar loss``.
    params: the starting parameters.
    batches: stacked batches (leading axis ``num_steps``) or an iterable of batches.
    optimizer: ``learning_rate -> optax.GradientTransformation``.
    min_lr: first learning rate, > 0.
    max_lr: last learning rate, > ``min_lr``.
    num_steps: steps in the sweep, >= 3.
    mode: ``"exponential"`` or ``"linear"``.
    smoothing: the EMA's :math:`\beta` in [0, 1).
    diverge_factor: :math:`k` > 1.

  Returns:
    A ``FindLRResult`` (``lrs``, ``losses``, ``smoothed_losses``, ``stopped_at``,
    ``suggestions``, ``suggestion``, ``plot(path)``).

  Example:
    >>> import jax, jax.numpy as jnp, optax, lrjax
    >>> xs = jax.random.normal(jax.random.PRNGKey(0), (50, 8, 2))
    >>> batches = (xs, xs @ jnp.array([1.0, -2.0]))
    >>> loss = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)
    >>> result = lrjax.find_lr(loss, jnp.zeros(2), batches, optimizer=optax.sgd,
    ...                        min_lr=1e-4, max_lr=10.0, num_steps=50)
    >>> result.stopped_at is not None  # SGD diverges past lr ~ 1 here
    True
    >>> 1e-3 < result.suggestion < 1.0
    True

  References:
    Smith, `Cyclical Learning Rates for Training Neural Networks
    <https://arxiv.org/abs/1506.01186>`_, 2017; fastai
    `lr_find <https://docs.fast.ai/callback.schedule.html#learner.lr_find>`_.
  """
  fn = "find_lr"
  v.positive(fn, "min_lr", min_lr)
  v.check(fn, "max_lr", max_lr, lambda a: a > min_lr, f"> min_lr={min_lr!r}")
  v.integer(fn, "num_steps", num_steps, minimum=3)
  v.one_of(fn, "mode", mode, ("exponential", "linear"))
  v.in_range(fn, "smoothing", smoothing, 0.0, 1.0, lo_open=False)
  v.check(fn, "diverge_factor", diverge_factor, lambda a: a > 1, "> 1")
  for name, value in (("min_lr", min_lr), ("max_lr", max_lr), ("diverge_factor", diverge_factor)):
    v.check(fn, name, value, lambda a: np.isfinite(a), "finite")
  i = np.arange(num_steps) / (num_steps - 1)
  if mode == "exponential":
    lrs = min_lr * (max_lr / min_lr) ** i
  else:
    lrs = min_lr + (max_lr - min_lr) * i
  # A list, generator or iterator yields one batch per step; any other pytree
  # (an array, a tuple or dict of arrays) is stacked along a leading step axis.
  stacked = not isinstance(batches, list) and not hasattr(batches, "__next__")
  init, step, sweep = _compiled(loss_fn, optimizer, tuple(float(x) for x in lrs),
                                float(smoothing), float(diverge_factor))
  carry = init(params)
  if stacked:
    leaves = jax.tree.leaves(batches)
    if any(np.shape(x)[:1] != (num_steps,) for x in leaves):
      raise ValueError(f"lrjax.{fn}: stacked batches must have leading axis num_steps="
                       f"{num_steps}, got shapes {[np.shape(x) for x in leaves]}")
    losses, smoothed, stops = sweep(carry, batches)
  else:
    out = []
    for _, batch in zip(range(num_steps), batches):
      carry, o = step(carry, batch)
      out.append(o)
    if len(out) < num_steps:
      raise ValueError(f"lrjax.{fn}: batches gave {len(out)} batches, need num_steps={num_steps}")
    losses, smoothed, stops = (jnp.stack(x) for x in zip(*out))
  losses, smoothed, stops = np.asarray(losses), np.asarray(smoothed), np.asarray(stops)
  stopped_at = int(np.argmax(stops)) if stops.any() else None
  suggestions = suggest(lrs, smoothed)
  return FindLRResult(lrs=lrs, losses=losses, smoothed_losses=smoothed, stopped_at=stopped_at,
                      suggestions=suggestions, suggestion=suggestions["valley"])
