"""``get_schedule``: lrjax schedules by the names Hugging Face ``get_scheduler`` uses.

It sits above both wings of the package: its names build pure schedules
(``lrjax.schedules``) and, for the plateau names, a stateful one (``lrjax.stateful``).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from lrjax import _validation as v
from lrjax.schedules._combinators import join
from lrjax.schedules._cosine import cosine_decay, cosine_restarts
from lrjax.schedules._decay import constant, inverse_sqrt, linear, polynomial
from lrjax.schedules._warmup import warmup, wsd
from lrjax.stateful import reduce_on_plateau

_FN = "get_schedule"


def _needs(name: str, label: str, value: Any) -> Any:
  if value is None:
    raise ValueError(f"lrjax.{_FN}: {name!r} requires {label}")
  return value


def _decay_steps(name: str, warmup_steps: Any, training_steps: Any) -> Any:
  warmup_steps = _needs(name, "num_warmup_steps", warmup_steps)
  training_steps = _needs(name, "num_training_steps", training_steps)
  if training_steps <= warmup_steps:
    raise ValueError(f"lrjax.{_FN}: {name!r} needs num_training_steps > num_warmup_steps, got "
                     f"num_training_steps={training_steps!r}, "
                     f"num_warmup_steps={warmup_steps!r}")
  return training_steps - warmup_steps


def _constant(peak, w, t):
  return constant(peak)


def _constant_with_warmup(peak, w, t):
  return warmup(constant(peak), _needs("constant_with_warmup", "num_warmup_steps", w))


def _linear(peak, w, t):
  return warmup(linear(peak, 0.0, _decay_steps("linear", w, t)), w)


def _cosine(peak, w, t, num_cycles=0.5):
  if num_cycles != 0.5:
    raise ValueError(f"lrjax.{_FN}: 'cosine' supports num_cycles=0.5 (one half-cosine to 0), "
                     f"got num_cycles={num_cycles!r}; for several cycles use "
                     "'cosine_with_restarts' or lrjax.cosine_restarts")
  return warmup(cosine_decay(peak, _decay_steps("cosine", w, t)), w)


def _cosine_with_restarts(peak, w, t, num_cycles=1):
  v.integer(_FN, "num_cycles", num_cycles, 1)
  decay = _decay_steps("cosine_with_restarts", w, t)
  return warmup(join([cosine_restarts(peak, decay / num_cycles), constant(0.0)], [decay]), w)


def _polynomial(peak, w, t, lr_end=1e-7, power=1.0):
  if not peak > lr_end:
    raise ValueError(f"lrjax.{_FN}: 'polynomial' needs lr_end < peak_value, got "
                     f"lr_end={lr_end!r}, peak_value={peak!r}")
  return warmup(polynomial(peak, lr_end, power, _decay_steps("polynomial", w, t)), w)


def _inverse_sqrt(peak, w, t, timescale=None):
  w = _needs("inverse_sqrt", "num_warmup_steps", w)
  return inverse_sqrt(peak, w, timescale if timescale is not None else (w or 10_000))


def _cosine_with_min_lr(peak, w, t, num_cycles=0.5, min_lr=None, min_lr_rate=None):
  if (min_lr is None) == (min_lr_rate is None):
    raise ValueError(f"lrjax.{_FN}: 'cosine_with_min_lr' needs exactly one of min_lr and "
                     f"min_lr_rate, got min_lr={min_lr!r}, min_lr_rate={min_lr_rate!r}")
  if num_cycles != 0.5:
    raise ValueError(f"lrjax.{_FN}: 'cosine_with_min_lr' supports num_cycles=0.5, got "
                     f"num_cycles={num_cycles!r}")
  end = min_lr if min_lr is not None else peak * min_lr_rate
  return warmup(cosine_decay(peak, _decay_steps("cosine_with_min_lr", w, t), end), w)


def _warmup_stable_decay(peak, w, t, num_decay_steps=None, num_stable_steps=None,
                         warmup_type="linear", decay_type="cosine", min_lr_ratio=0.0,
                         num_cycles=0.5):
  name = "warmup_stable_decay"
  w = _needs(name, "num_warmup_steps", w)
  num_decay_steps = _needs(name, "num_decay_steps", num_decay_steps)
  if num_stable_steps is None:
    num_stable_steps = _needs(name, "num_training_steps or num_stable_steps", t) - w \
        - num_decay_steps
  v.one_of(_FN, "warmup_type", warmup_type, ("linear",))
  v.one_of(_FN, "decay_type", decay_type, ("linear", "cosine", "1-sqrt"))
  if num_cycles != 0.5:
    raise ValueError(f"lrjax.{_FN}: {name!r} supports num_cycles=0.5, got "
                     f"num_cycles={num_cycles!r}")
  floor = peak * min_lr_ratio
  return wsd(peak, w, num_stable_steps, num_decay_steps, init_value=floor, end_value=floor,
             decay_shape=decay_type)


def _reduce_lr_on_plateau(peak, w, t, min_lr=0.0, **kwargs):
  return reduce_on_plateau(peak, min_value=min_lr, **kwargs)


_BUILDERS: dict[str, Callable[..., Any]] = {
    "constant": _constant,
    "constant_with_warmup": _constant_with_warmup,
    "linear": _linear,
    "cosine": _cosine,
    "cosine_with_restarts": _cosine_with_restarts,
    "polynomial": _polynomial,
    "inverse_sqrt": _inverse_sqrt,
    "cosine_with_min_lr": _cosine_with_min_lr,
    "warmup_stable_decay": _warmup_stable_decay,
    "reduce_lr_on_plateau": _reduce_lr_on_plateau,
}
_ALIASES = {"wsd": "warmup_stable_decay", "plateau": "reduce_lr_on_plateau",
            "reduce_on_plateau": "reduce_lr_on_plateau"}

GET_SCHEDULE_NAMES = tuple(sorted(set(_BUILDERS) | set(_ALIASES)))


@v.checks_finite
def get_schedule(name: str, *, peak_value: float, num_warmup_steps: Optional[int] = None,
                 num_training_steps: Optional[int] = None, **kwargs: Any) -> Any:
  r"""The schedule Hugging Face ``get_scheduler(name, ...)`` builds, as an lrjax schedule.

  ``peak_value`` plays the part of the optimizer's initial ``lr`` in PyTorch
  (each Hugging Face schedule is a ``LambdaLR`` multiplier of it). With
  :math:`W` = ``num_warmup_steps``, :math:`T` = ``num_training_steps``,
  :math:`P` = ``peak_value`` and :math:`p = (t - W) / (T - W)`, every decay
  below follows the linear warmup :math:`P t / W` for :math:`t < W`:

  - ``"constant"``: :math:`P` (no warmup); ``"constant_with_warmup"``: :math:`P` after it.
  - ``"linear"``: :math:`P \max(0, 1 - p)`.
  - ``"cosine"``: :math:`P (1 + \cos \pi p) / 2` (``num_cycles=0.5``).
  - ``"cosine_with_restarts"``: :math:`P (1 + \cos(\pi ((n p) \bmod 1))) / 2`
    for :math:`p < 1`, then 0 (``num_cycles=n``, default 1).
  - ``"polynomial"``: :math:`(P - E)(1 - p)^k + E`, then :math:`E`
    (``lr_end=E=1e-7``, ``power=k=1``).
  - ``"inverse_sqrt"``: :math:`P \sqrt{\tau / (t - W + \tau)}` (``timescale=τ``,
    default :math:`W`, or 10,000 when :math:`W = 0`).
  - ``"cosine_with_min_lr"``: the cosine from :math:`P` to ``min_lr`` (or
    ``min_lr_rate`` · :math:`P`).
  - ``"warmup_stable_decay"`` (``"wsd"``): ``lrjax.wsd`` with Hugging Face's
    arguments ``num_decay_steps``, ``num_stable_steps`` (or
    :math:`T - W - D`), ``decay_type`` (``"cosine"`` by default, as there;
    ``"linear"``, ``"1-sqrt"``) and ``min_lr_ratio`` (warmup starts and decay
    ends at ``min_lr_ratio`` · :math:`P`).
  - ``"reduce_lr_on_plateau"`` (``"plateau"``, timm's name): the stateful
    ``lrjax.reduce_on_plateau(peak_value, ...)``, whose defaults are PyTorch's;
    ``min_lr`` is its ``min_value``.

  Intended differences: past ``num_training_steps`` the cosine schedules hold
  their final value (Hugging Face's ``"cosine"`` multiplier rises again there);
  ``"cosine"``, ``"cosine_with_min_lr"`` and ``"warmup_stable_decay"`` take
  only ``num_cycles=0.5``, and ``"warmup_stable_decay"`` only
  ``warmup_type="linear"`` (a clear error otherwise). Hugging Face's
  ``cosine_warmup_with_min_lr`` (a warmup shifted by one step) is not provided.

  Args:
    name: one of ``GET_SCHEDULE_NAMES``.
    peak_value: the learning rate after warmup (PyTorch's optimizer ``lr``).
    num_warmup_steps: ``W``; required by every name but ``"constant"`` and
      ``"reduce_lr_on_plateau"``.
    num_training_steps: ``T``; required by the decays to 0 or to a floor.
    **kwargs: the schedule's own arguments (Hugging Face's
      ``scheduler_specific_kwargs``): ``num_cycles``, ``lr_end``, ``power``,
      ``timescale``, ``min_lr``, ``min_lr_rate``, ``num_decay_steps``,
      ``num_stable_steps``, ``decay_type``, ``min_lr_ratio``, or
      ``reduce_on_plateau``'s.

  Returns:
    An lrjax schedule (pure; stateful for the plateau names).

  Example:
    >>> import lrjax
    >>> s = lrjax.get_schedule("linear", peak_value=1e-3, num_warmup_steps=10,
    ...                        num_training_steps=110)
    >>> [round(float(s(t)), 6) for t in (0, 5, 10, 60, 110, 200)]
    [0.0, 0.0005, 0.001, 0.0005, 0.0, 0.0]

  References:
    Hugging Face transformers, `optimizer schedules
    <https://huggingface.co/docs/transformers/main_classes/optimizer_schedules>`_.
  """
  key = _ALIASES.get(name, name)
  if key not in _BUILDERS:
    raise ValueError(f"lrjax.{_FN}: unknown schedule name {name!r}; known: "
                     f"{', '.join(GET_SCHEDULE_NAMES)}")
  builder = _BUILDERS[key]
  import inspect
  params = inspect.signature(builder).parameters
  if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
    extra = sorted(set(kwargs) - set(params))
    if extra:
      own = [p for p in params if p not in ("peak", "w", "t")]
      raise ValueError(f"lrjax.{_FN}: {name!r} takes no argument {', '.join(extra)}; its own "
                       f"arguments: {', '.join(own) or '(none)'}")
  for arg, value in (("num_warmup_steps", num_warmup_steps),
                     ("num_training_steps", num_training_steps)):
    if value is not None:
      v.integer(_FN, arg, value, 0)
  return builder(peak_value, num_warmup_steps, num_training_steps, **kwargs)
