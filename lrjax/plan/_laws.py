"""Loss-curve laws: the multi-power law and the annealing law, their terms and their prediction.

Everything that depends only on the rates (sums of rates, the loss-drop terms) is computed once
on the host in float64 NumPy; what depends on the law's parameters runs in JAX under 64-bit
types (``jax.enable_x64``, scoped: the caller's setting is untouched), jitted once per law and
array size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any, Iterator, NamedTuple, Optional, Sequence

import numpy as np

import jax
import jax.numpy as jnp

from lrjax.plan._curves import Curve, as_curve, rates

LAWS = ("multi_power", "annealing")
PARAM_NAMES = {
    "multi_power": ("L0", "A", "alpha", "B", "C", "beta", "gamma"),
    "annealing": ("L0", "A", "alpha", "C"),
}
DEFAULT_RESOLUTION = 64
DEFAULT_DECAY = 0.999


@contextlib.contextmanager
def x64() -> Iterator[None]:
  """64-bit JAX types inside the block only (``jax.enable_x64`` or its older home)."""
  if callable(getattr(jax, "enable_x64", None)):
    with jax.enable_x64(True):
      yield
  else:  # pragma: no cover - jax < 0.7
    from jax.experimental import enable_x64  # type: ignore[attr-defined]
    with enable_x64():
      yield


def _bucket(n: int) -> int:
  """The padded length for ``n`` entries: >= 256, rounded up to 1/8 of its power of two
  (a few programs serve every size, at most 12.5% of the work wasted on padding)."""
  step = max(32, 1 << max(0, int(n - 1).bit_length() - 3))
  return max(256, -(-n // step) * step)


def _distance_edges(resolution: Optional[int], longest: int) -> np.ndarray:
  """Edges of the distance bins ``d = s - k``: width 1 up to ``resolution``, then geometric."""
  if resolution is None:
    return np.arange(longest + 2)
  edges = [0]
  while edges[-1] <= longest:
    edges.append(max(edges[-1] + 1, int(edges[-1] * (1.0 + 1.0 / resolution))))
  return np.asarray(edges, dtype=np.int64)


def drop_terms(lrs: np.ndarray, steps: np.ndarray,
               resolution: Optional[int] = DEFAULT_RESOLUTION) -> dict[str, np.ndarray]:
  r"""The terms of the multi-power law's loss drop at each logged step, from the rates alone.

  ``LD(s) = sum_k g_k G(eta_k^{-gamma} S_k(s))`` with ``g_k = eta_{k-1} - eta_k`` and
  ``S_k(s) = sum_{tau=k}^{s} eta_tau``, over ``1 <= k <= s`` with ``g_k != 0``. With a
  ``resolution`` the ``k`` at distance ``d = s - k`` are grouped in bins of width 1 up to
  ``d = resolution`` and of relative width ``1/resolution`` beyond (and never across a change of
  sign of ``g``): a bin contributes its summed ``g`` at its ``g``-weighted centre (midpoint
  rule; its log-rate is the ``g``-weighted mean of ``log eta_k``). Returns ``j`` (the logged step's index), ``gap``, ``log_eta`` and ``log_s`` per term.
  """
  n = int(steps[-1]) + 1
  lrs = lrs[:n]
  cum = np.concatenate([[0.0], np.cumsum(lrs)])             # cum[i] = sum(lrs[:i])
  gap = np.zeros(n)
  gap[1:] = lrs[:-1] - lrs[1:]
  gap_prefix = np.concatenate([[0.0], np.cumsum(gap)])
  moment_prefix = np.concatenate([[0.0], np.cumsum(gap * np.arange(n))])
  with np.errstate(divide="ignore", invalid="ignore"):
    log_lrs = np.log(lrs)
  # a bin's log-rate is the gap-weighted mean of log(eta_k): the law reads eta_k^-gamma, which
  # changes fast where the rate is small (a warmup from 0) however narrow the bin
  finite = np.isfinite(log_lrs)
  log_prefix = np.concatenate([[0.0], np.cumsum(gap * np.where(finite, log_lrs, 0.0))])
  zero_prefix = np.concatenate([[0], np.cumsum(~finite & (gap != 0))])
  sign = np.sign(gap)
  runs = np.concatenate([[0], np.nonzero(np.diff(sign))[0] + 1, [n]])
  edges = _distance_edges(resolution, n)
  out: dict[str, list] = {"j": [], "gap": [], "log_eta": [], "log_s": []}
  for j, s in enumerate(steps.tolist()):
    upper = s + 1 - edges                                    # k < upper for distance >= edge
    upper = upper[upper > 1]
    cuts = np.unique(np.concatenate([upper, runs[(runs > 1) & (runs <= s)], [1, s + 1]]))
    lo, hi = cuts[:-1], cuts[1:]                             # bins [lo, hi) of k
    g = gap_prefix[hi] - gap_prefix[lo]
    keep = g != 0
    lo, hi, g = lo[keep], hi[keep], g[keep]
    centre = (moment_prefix[hi] - moment_prefix[lo]) / g
    log_eta = (log_prefix[hi] - log_prefix[lo]) / g
    log_eta = np.where(zero_prefix[hi] > zero_prefix[lo], -np.inf, log_eta)
    tail = cum[s + 1] - np.interp(centre, np.arange(n + 1, dtype=np.float64), cum)
    with np.errstate(divide="ignore"):
      out["log_eta"].append(log_eta)
      out["log_s"].append(np.log(tail))
    out["j"].append(np.full(g.shape, j))
    out["gap"].append(g)
  return {k: np.concatenate(v) for k, v in out.items()}


def annealing_area(lrs: np.ndarray, steps: np.ndarray, decay: float) -> np.ndarray:
  r"""``S2(s) = sum_{i <= s} m_i``, ``m_i = decay m_{i-1} + (eta_{i-1} - eta_i)`` (Tissue et al.).

  Counted from the update at which the rate first peaks, so a warmup adds no negative area.
  """
  from scipy.signal import lfilter
  n = int(steps[-1]) + 1
  lrs = lrs[:n]
  gap = np.zeros(n)
  gap[1:] = lrs[:-1] - lrs[1:]
  gap[: int(np.argmax(lrs)) + 1] = 0.0
  momentum = lfilter([1.0], [1.0, -decay], gap)
  return np.cumsum(momentum)[steps]


class Terms(NamedTuple):
  """The rate-only terms of one or more curves, padded to a bucketed length."""
  s1: np.ndarray        # [P] sum of rates up to each logged step
  s2: np.ndarray        # [P] annealing area (annealing law)
  y: np.ndarray         # [P] logged loss (1 where padded)
  weight: np.ndarray    # [P] 1 for a logged loss, 0 for padding
  j: np.ndarray         # [Q] logged-point index of each loss-drop term
  gap: np.ndarray       # [Q]
  log_eta: np.ndarray   # [Q]
  log_s: np.ndarray     # [Q]


def terms(law: str, curves: Sequence[Curve], resolution: Optional[int],
          decay: float) -> Terms:
  """The padded terms of ``curves`` for ``law`` (all curves in one flat set)."""
  s1, s2, y, parts = [], [], [], []
  offset = 0
  for c in curves:
    cum = np.cumsum(c.lrs)
    s1.append(cum[c.steps])
    y.append(c.losses)
    if law == "annealing":
      s2.append(annealing_area(c.lrs, c.steps, decay))
    else:
      s2.append(np.zeros(c.steps.shape))
      part = drop_terms(c.lrs, c.steps, resolution)
      part["j"] = part["j"] + offset
      parts.append(part)
    offset += c.steps.size
  p, q = _bucket(offset), _bucket(sum(part["j"].size for part in parts))

  def pad(chunks, size, fill, dtype=np.float64):
    flat = np.concatenate(chunks) if chunks else np.zeros(0)
    return np.concatenate([flat, np.full(size - flat.size, fill)]).astype(dtype)

  cat = {k: [part[k] for part in parts] for k in ("j", "gap", "log_eta", "log_s")}
  return Terms(pad(s1, p, 1.0), pad(s2, p, 0.0), pad(y, p, 1.0),
               pad([np.ones(offset)], p, 0.0), pad(cat["j"], q, 0, np.int32),
               pad(cat["gap"], q, 0.0), pad(cat["log_eta"], q, 0.0),
               pad(cat["log_s"], q, 0.0))


def saturation(x: jax.Array, c: jax.Array, beta: jax.Array) -> jax.Array:
  """``G(x) = 1 - (C x + 1)^(-beta)``."""
  return -jnp.expm1(-beta * jnp.log1p(c * x))


def predict_terms(law: str, params: jax.Array, t: Terms) -> jax.Array:
  """The law's loss at each logged point of ``t`` (``params`` in :data:`PARAM_NAMES` order)."""
  if law == "annealing":
    l0, a, alpha, c = (params[i] for i in range(4))
    return l0 + a * t.s1 ** (-alpha) - c * t.s2
  l0, a, alpha, b, c, beta, gamma = (params[i] for i in range(7))
  finite_eta = jnp.isfinite(t.log_eta)
  # eta_k = 0 with a rate left to run: x = inf, G = 1; a tail of zeros: x = 0, G = 0.
  x = jnp.exp(jnp.where(finite_eta, t.log_s - gamma * jnp.where(finite_eta, t.log_eta, 0.0),
                        -jnp.inf))
  g = jnp.where(finite_eta | ~jnp.isfinite(t.log_s), saturation(x, c, beta),
                1.0)
  drop = jax.ops.segment_sum(t.gap * g, t.j, num_segments=t.s1.shape[0])
  return l0 + a * t.s1 ** (-alpha) - b * drop


predict_jit = jax.jit(predict_terms, static_argnums=0)


@dataclasses.dataclass(frozen=True)
class Law:
  """A fitted loss-curve law: predicts the loss of a run from the rate of every update.

  Attributes:
    law: ``"multi_power"`` or ``"annealing"``.
    params: the fitted parameters by name (:data:`PARAM_NAMES`).
    decay: the annealing law's momentum ``lambda`` (fixed, not fitted).
    resolution: bins per e-fold of distance in the loss-drop sum (``None``: every update).

  Example:
    >>> import numpy as np, lrjax
    >>> law = lrjax.plan.Law("annealing", dict(L0=2.0, A=0.5, alpha=0.5, C=10.0))
    >>> lrs = np.full(1000, 1e-2)
    >>> round(float(law.predict(lrs, [999])[0]), 4)   # 2 + 0.5 * (1000 * 0.01) ** -0.5
    2.1581
    >>> lrjax.plan.Law.from_config(law.to_config()) == law
    True

  References:
    Luo et al., `A Multi-Power Law for Loss Curve Prediction Across Learning Rate Schedules
    <https://arxiv.org/abs/2503.12811>`_, ICLR 2025;
    Tissue et al., `Scaling Law with Learning Rate Annealing
    <https://arxiv.org/abs/2408.11029>`_, 2024.
  """
  law: str
  params: dict
  decay: float = DEFAULT_DECAY
  resolution: Optional[int] = DEFAULT_RESOLUTION

  def __post_init__(self):
    if self.law not in LAWS:
      raise ValueError(f"lrjax.plan.Law: law must be one of {', '.join(LAWS)}, got "
                       f"{self.law!r}")
    names = PARAM_NAMES[self.law]
    if set(self.params) != set(names):
      raise ValueError(f"lrjax.plan.Law: a {self.law} law has parameters {', '.join(names)}, "
                       f"got {', '.join(self.params) or 'none'}")
    if not all(math.isfinite(float(v)) for v in self.params.values()):
      raise ValueError(f"lrjax.plan.Law: every parameter must be finite, got {self.params}")
    if not 0 < self.decay < 1:
      raise ValueError(f"lrjax.plan.Law: decay must be in (0, 1), got {self.decay}")
    if self.resolution is not None and (not isinstance(self.resolution, int)
                                        or self.resolution < 1):
      raise ValueError(f"lrjax.plan.Law: resolution must be an int >= 1 or None, got "
                       f"{self.resolution!r}")
    object.__setattr__(self, "params", {k: float(self.params[k]) for k in names})

  @property
  def vector(self) -> np.ndarray:
    return np.asarray([self.params[k] for k in PARAM_NAMES[self.law]])

  def predict(self, lrs: Any, steps: Any) -> np.ndarray:
    """The predicted loss at ``steps`` of a run whose update ``t`` has rate ``lrs[t]``.

    Args:
      lrs: the rate of every update from 0 (an array, or a schedule).
      steps: the updates to predict at (increasing, >= 0).

    Returns:
      float64 NumPy array, one loss per step.
    """
    steps = np.asarray(steps)
    fake = np.ones(steps.shape)
    curve = as_curve("Law.predict", (lrs, steps, fake))
    return self.predict_curves([curve])[0]

  def predict_curves(self, curves: Sequence[Curve]) -> list[np.ndarray]:
    """The prediction at the logged steps of each curve (one program for all of them)."""
    t = terms(self.law, curves, self.resolution, self.decay)
    with x64():
      pred = np.asarray(predict_jit(self.law, jnp.asarray(self.vector),
                                     jax.tree.map(jnp.asarray, t)))
    out, start = [], 0
    for c in curves:
      out.append(pred[start:start + c.steps.size])
      start += c.steps.size
    return out

  def final_loss(self, lrs: Any) -> float:
    """The predicted loss after the last update of ``lrs`` (an array, or ``(schedule, n)``)."""
    values = lrs_array("Law.final_loss", lrs)
    return float(self.predict(values, [values.size - 1])[0])

  def to_config(self) -> dict:
    """A JSON-ready dict that :meth:`from_config` reads back."""
    return {"law": self.law, "params": dict(self.params), "decay": self.decay,
            "resolution": self.resolution}

  @classmethod
  def from_config(cls, config: dict) -> "Law":
    """The law written by :meth:`to_config`."""
    if not isinstance(config, dict) or "law" not in config or "params" not in config:
      raise ValueError("lrjax.plan.Law.from_config: expected a dict with 'law' and 'params' "
                       f"(written by Law.to_config), got {config!r:.200}")
    return cls(config["law"], dict(config["params"]), float(config.get("decay",
                                                                        DEFAULT_DECAY)),
               config.get("resolution", DEFAULT_RESOLUTION))


def lrs_array(fn: str, lrs: Any) -> np.ndarray:
  """An array of rates, or ``(schedule, total_steps)`` evaluated on ``0 .. total_steps - 1``."""
  if isinstance(lrs, tuple) and len(lrs) == 2 and callable(lrs[0]):
    schedule, total = lrs
    return rates(fn, schedule, int(total))
  if callable(lrs):
    raise ValueError(f"lrjax.plan.{fn}: a schedule needs its length: pass (schedule, "
                     "total_steps)")
  values = np.asarray(lrs, dtype=np.float64)
  return rates(fn, values, values.size)


def metrics(pred: np.ndarray, losses: np.ndarray) -> dict[str, float]:
  """R², mean and worst relative error of ``pred`` against ``losses`` (the source's measures)."""
  rel = np.abs(pred - losses) / losses
  ss = np.sum((losses - losses.mean()) ** 2)
  r2 = 1.0 - np.sum((losses - pred) ** 2) / ss if ss > 0 else float("nan")
  return {"r2": float(r2), "mean_rel_error": float(rel.mean()),
          "worst_rel_error": float(rel.max())}
