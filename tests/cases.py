"""One shared list of schedules that drives the common tests.

Each case pairs an lrjax schedule with its reference, written from the
documented formula in ``reference.py`` (never from lrjax's own output), and a
horizon that covers every boundary, the end and beyond.
"""

import dataclasses
import functools
import math
from typing import Callable

import jax
import numpy as np

import lrjax
import reference as ref


@dataclasses.dataclass(frozen=True)
class Case:
  id: str
  build: Callable[[], lrjax.Schedule]
  ref: Callable[[float], float]
  horizon: int
  fractional: bool = True  # whether the reference is defined between steps


def _c(id, build, refer, horizon, fractional=True):
  return Case(id, build, refer, horizon, fractional)


def _held_after(last, fn):
  """lrjax holds the final value from ``last`` on (documented difference)."""
  return lambda t: fn(min(t, last))


P = functools.partial

CASES = [
    _c("constant", lambda: lrjax.constant(0.3), lambda t: 0.3, 20),
    _c("linear", lambda: lrjax.linear(1.0, 0.1, 40),
       P(ref.torch_linear_lr, 1.0, 1.0, 0.1, 40), 60),
    _c("linear_begin", lambda: lrjax.linear(0.5, 2.0, 30, transition_begin=10),
       P(ref.optax_polynomial, 0.5, 2.0, 1.0, 30, 10), 60),
    _c("polynomial", lambda: lrjax.polynomial(1.0, 0.0, 2.0, 50),
       P(ref.torch_polynomial_lr, 1.0, 50, 2.0), 80),
    _c("polynomial_begin", lambda: lrjax.polynomial(2.0, 0.5, 0.5, 40, 7),
       P(ref.optax_polynomial, 2.0, 0.5, 0.5, 40, 7), 70),
    _c("polynomial_cycle", lambda: lrjax.polynomial(1.0, 0.01, 1.5, 20, cycle=True),
       P(ref.keras_polynomial_decay, 1.0, 20, 0.01, 1.5, True), 95),
    _c("exponential", lambda: lrjax.exponential_decay(1.0, 10, 0.5),
       P(ref.optax_exponential_decay, 1.0, 10, 0.5, 0, False, None), 60),
    _c("exponential_torch", lambda: lrjax.exponential_decay(0.1, 1, 0.9),
       P(ref.torch_exponential_lr, 0.1, 0.9), 60),
    _c("exponential_staircase_begin_floor",
       lambda: lrjax.exponential_decay(1.0, 8, 0.5, transition_begin=5, staircase=True,
                                       end_value=0.1),
       P(ref.optax_exponential_decay, 1.0, 8, 0.5, 5, True, 0.1), 60),
    _c("exponential_growth_ceiling",
       lambda: lrjax.exponential_decay(0.1, 10, 2.0, end_value=0.5),
       P(ref.optax_exponential_decay, 0.1, 10, 2.0, 0, False, 0.5), 60),
    _c("step_decay", lambda: lrjax.step_decay(1.0, 7, 0.5),
       P(ref.torch_step_lr, 1.0, 7, 0.5), 50),
    _c("multistep_decay", lambda: lrjax.multistep_decay(1.0, [5, 12, 12, 30], 0.5),
       P(ref.torch_multistep_lr, 1.0, [5, 12, 12, 30], 0.5), 45),
    _c("inverse_time", lambda: lrjax.inverse_time_decay(1.0, 10, 0.5),
       P(ref.keras_inverse_time_decay, 1.0, 10, 0.5, False), 60),
    _c("inverse_time_staircase", lambda: lrjax.inverse_time_decay(2.0, 7, 1.5, True),
       P(ref.keras_inverse_time_decay, 2.0, 7, 1.5, True), 60),
    _c("inverse_sqrt", lambda: lrjax.inverse_sqrt(1.0, 16),
       P(ref.inverse_sqrt, 1.0, 16, None), 120),
    _c("inverse_sqrt_timescale", lambda: lrjax.inverse_sqrt(0.5, 10, timescale=40.0),
       P(ref.inverse_sqrt, 0.5, 10, 40.0), 120),
    _c("cosine_decay", lambda: lrjax.cosine_decay(1.0, 40, end_value=0.1),
       P(ref.torch_cosine_annealing_lr, 1.0, 40, 0.1), 70),
    _c("cosine_decay_exponent", lambda: lrjax.cosine_decay(2.0, 30, 0.5, exponent=2.0),
       P(ref.optax_cosine_decay, 2.0, 30, 0.25, 2.0), 50),
    _c("warmup_cosine_decay", lambda: lrjax.warmup_cosine_decay(0.1, 1.0, 10, 50, 0.05),
       P(ref.optax_warmup_cosine_decay, 0.1, 1.0, 10, 50, 0.05, 1.0), 80),
    _c("warmup_cosine_decay_no_warmup",
       lambda: lrjax.warmup_cosine_decay(0.0, 1.0, 0, 30, 0.0, 1.5),
       P(ref.optax_warmup_cosine_decay, 0.0, 1.0, 0, 30, 0.0, 1.5), 50),
    _c("wsd_1sqrt", lambda: lrjax.wsd(1.0, 10, 30, 20),
       P(ref.wsd, 1.0, 10, 30, 20, 0.0, 0.0, "1-sqrt"), 80),
    _c("wsd_linear", lambda: lrjax.wsd(2.0, 5, 10, 15, 0.2, 0.1, "linear"),
       P(ref.wsd, 2.0, 5, 10, 15, 0.2, 0.1, "linear"), 50),
    _c("wsd_cosine", lambda: lrjax.wsd(1.0, 0, 12, 8, end_value=0.01, decay_shape="cosine"),
       P(ref.wsd, 1.0, 0, 12, 8, 0.0, 0.01, "cosine"), 40),
    _c("cyclic_triangular", lambda: lrjax.cyclic(0.1, 1.0, 10),
       P(ref.torch_cyclic_lr, 0.1, 1.0, 10, None, "triangular", 1.0), 70),
    _c("cyclic_triangular2_asym", lambda: lrjax.cyclic(0.01, 0.5, 4, 12, "triangular2"),
       P(ref.torch_cyclic_lr, 0.01, 0.5, 4, 12, "triangular2", 1.0), 70),
    _c("cyclic_exp_range", lambda: lrjax.cyclic(0.05, 1.0, 6, 9, "exp_range", 0.97),
       P(ref.torch_cyclic_lr, 0.05, 1.0, 6, 9, "exp_range", 0.97), 70),
    _c("cosine_restarts", lambda: lrjax.cosine_restarts(1.0, 10, end_value=0.1),
       lambda t: ref.torch_cosine_warm_restarts_sequence(1.0, 10, 1, 0.1, int(t) + 1)[-1],
       55, fractional=False),
    _c("cosine_restarts_mult2", lambda: lrjax.cosine_restarts(0.5, 5, 2.0),
       lambda t: ref.torch_cosine_warm_restarts_sequence(0.5, 5, 2, 0.0, int(t) + 1)[-1],
       160, fractional=False),
    _c("cosine_restarts_mult3", lambda: lrjax.cosine_restarts(1.0, 3, 3.0, end_value=0.05),
       lambda t: ref.torch_cosine_warm_restarts_sequence(1.0, 3, 3, 0.05, int(t) + 1)[-1],
       130, fractional=False),
    _c("cosine_restarts_keras", lambda: lrjax.cosine_restarts(2.0, 8, 1.5, 0.7, 0.2),
       P(ref.keras_cosine_decay_restarts, 2.0, 8, 1.5, 0.7, 0.1), 120),
    _c("cosine_restarts_keras_mult1", lambda: lrjax.cosine_restarts(1.0, 6, 1.0, 0.5, 0.1),
       P(ref.keras_cosine_decay_restarts, 1.0, 6, 1.0, 0.5, 0.1), 40),
    _c("one_cycle_cos", lambda: lrjax.one_cycle(1.0, 50),
       _held_after(49, P(ref.torch_one_cycle_lr, 1.0, 50, 0.3, "cos", 25.0, 1e4, False)), 50),
    _c("one_cycle_linear", lambda: lrjax.one_cycle(0.5, 40, 0.25, "linear", 10.0, 100.0),
       _held_after(39, P(ref.torch_one_cycle_lr, 0.5, 40, 0.25, "linear", 10.0, 100.0,
                           False)), 40),
    _c("one_cycle_three_phase", lambda: lrjax.one_cycle(1.0, 60, 0.3, three_phase=True),
       _held_after(59, P(ref.torch_one_cycle_lr, 1.0, 60, 0.3, "cos", 25.0, 1e4, True)), 60),
    _c("one_cycle_three_phase_linear_fractional",
       lambda: lrjax.one_cycle(2.0, 33, 0.35, "linear", 5.0, 20.0, True),
       _held_after(32, P(ref.torch_one_cycle_lr, 2.0, 33, 0.35, "linear", 5.0, 20.0, True)),
       33),
    _c("piecewise_constant", lambda: lrjax.piecewise_constant([5, 12, 30], [1.0, 0.5, 0.2, 0.05]),
       P(ref.piecewise_constant, [5, 12, 30], [1.0, 0.5, 0.2, 0.05]), 45),
    _c("piecewise_linear", lambda: lrjax.piecewise_linear([3, 10, 30, 31], [0.0, 1.0, 0.2, 0.5]),
       lambda t: float(np.interp(t, [3, 10, 30, 31], [0.0, 1.0, 0.2, 0.5])), 45),
    _c("warmup_linear", lambda: lrjax.warmup(lrjax.cosine_decay(1.0, 30), 10, 0.1),
       lambda t: 0.1 + 0.9 * t / 10 if t < 10 else ref.optax_cosine_decay(1.0, 30, 0, 1, t - 10),
       60),
    _c("warmup_cosine", lambda: lrjax.warmup(lrjax.constant(2.0), 8, shape="cosine"),
       lambda t: (2.0 * (1 - math.cos(math.pi * t / 8)) / 2) if t < 8 else 2.0, 20),
    _c("warmup_exponential", lambda: lrjax.warmup(lrjax.step_decay(1.0, 5), 10, 1e-3,
                                                  "exponential"),
       lambda t: 1e-3 * 1000.0 ** (t / 10) if t < 10 else ref.torch_step_lr(1.0, 5, 0.1, t - 10),
       40),
    _c("join", lambda: lrjax.join([lrjax.linear(0.0, 1.0, 10), lrjax.constant(1.0),
                                   lrjax.cosine_decay(1.0, 20, 0.1)], [10, 25]),
       P(ref.optax_join, [P(ref.optax_polynomial, 0.0, 1.0, 1, 10, 0), lambda t: 1.0,
                          P(ref.torch_cosine_annealing_lr, 1.0, 20, 0.1)], [10, 25]), 60),
    _c("join_same_structure",
       lambda: lrjax.join([lrjax.cosine_decay(1.0 / (k + 1), 10) for k in range(5)],
                          [10, 20, 30, 40]),
       P(ref.optax_join, [P(ref.torch_cosine_annealing_lr, 1.0 / (k + 1), 10, 0.0)
                          for k in range(5)], [10, 20, 30, 40]), 60),
    _c("swa_schedule_cos", lambda: lrjax.swa_schedule(lrjax.cosine_decay(1.0, 100), 0.05, 30, 10),
       lambda t: ref.torch_cosine_annealing_lr(1.0, 100, 0.0, t) if t < 30 else
       ref.torch_swalr(ref.torch_cosine_annealing_lr(1.0, 100, 0.0, 30), 0.05, 10, "cos", t - 30),
       60),
    _c("swa_schedule_linear", lambda: lrjax.swa_schedule(0.3, 0.02, 5, 7, "linear"),
       lambda t: 0.3 if t < 5 else ref.torch_swalr(0.3, 0.02, 7, "linear", t - 5), 30),
    _c("scale", lambda: lrjax.scale(lrjax.step_decay(1.0, 10), 0.3),
       lambda t: 0.3 * ref.torch_step_lr(1.0, 10, 0.1, t), 40),
    _c("clip", lambda: lrjax.clip(lrjax.linear(1.0, 0.0, 20), 0.2, 0.8),
       lambda t: min(max(ref.optax_polynomial(1.0, 0.0, 1, 20, 0, t), 0.2), 0.8), 30),
    _c("product", lambda: lrjax.product(lrjax.step_decay(1.0, 10, 0.5), lrjax.linear(0.0, 1.0, 20)),
       lambda t: ref.torch_step_lr(1.0, 10, 0.5, t) * ref.optax_polynomial(0.0, 1.0, 1, 20, 0, t),
       40),
]

CASE_IDS = [c.id for c in CASES]


def _raw_steps(case: Case) -> np.ndarray:
  ints = np.arange(0, int(case.horizon * 1.25) + 2, dtype=np.float64)
  if not case.fractional:
    return ints
  fracs = np.linspace(0.0, case.horizon, 17) + 0.37
  return np.concatenate([ints, fracs])


# Every case's steps have one length (the longest case's), so that the programs JAX
# compiles for them (``at`` below, and its per-primitive programs in eager mode) are
# compiled once for all cases instead of once per case.
NUM_STEPS = max(len(_raw_steps(c)) for c in CASES)
MAX_HORIZON = max(c.horizon for c in CASES)


def steps_for(case: Case) -> np.ndarray:
  """Every integer step to 1.25 x the horizon, plus some fractional steps.

  Padded to ``NUM_STEPS`` by repeating the last step: the same points, one shape.
  """
  return pad(_raw_steps(case), NUM_STEPS)


def pad(x, n):
  """``x`` padded to length ``n`` by repeating its last entry."""
  return np.pad(np.asarray(x), (0, n - len(x)), mode="edge")


@jax.jit
def at(schedule, steps):
  """``schedule(steps)`` in one program per schedule structure, the schedule an argument."""
  return schedule(steps)


def allclose_rule(rtol=1e-5, atol=1e-6):
  """``numpy.testing.assert_allclose``'s rule as a predicate ``(got, want) -> bool``: the same
  shape, ``|got - want| <= atol + rtol * |want|`` elementwise, NaNs equal; ``atol`` may be a
  function of ``want``."""
  def close(got, want):
    got, want = np.asarray(got), np.asarray(want)
    bound = atol(want) if callable(atol) else atol
    return got.shape == want.shape and bool(np.allclose(got, want, rtol=rtol, atol=bound,
                                                        equal_nan=True))
  return close


def approx_rule(got, want):
  """``pytest.approx``'s default rule for one value: within 1e-6 or 1e-5 relative."""
  return abs(float(got) - float(want)) <= max(1e-5 * abs(float(want)), 1e-6)


def assert_jit_close(jitted, expected, inputs, close=allclose_rule()):
  """``jitted()`` is ``close`` to ``expected()`` (the jitted call made first, its result read
  before ``expected`` runs: an eager call or a reference formula). On a miss the message also
  says what the same jitted call gives again and the inputs, so a failure seen once in many
  runs (tests/README.md) tells a wrong program (the same values again) from a transient one."""
  got = np.asarray(jitted())
  want = np.asarray(expected())
  if not close(got, want):
    again = np.asarray(jitted())
    verdict = ("the same values" if np.array_equal(again, got, equal_nan=True) else
               "the right values" if close(again, want) else "other wrong values")
    raise AssertionError(f"jit gives {np.ravel(got)[:12]} (shape {got.shape}), expected "
                         f"{np.ravel(want)[:12]} (shape {want.shape}); the same call again "
                         f"gives {verdict}: {np.ravel(again)[:12]}\ninputs: {inputs}")
