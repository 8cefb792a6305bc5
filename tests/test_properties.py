"""Hypothesis properties: decays never increase, values stay in bounds, joints are continuous."""

import pytest
import numpy as np
from hypothesis import given, strategies as st

import lrjax
import cases

lr = st.floats(1e-6, 10.0)
frac = st.floats(0.0, 1.0)
length = st.integers(1, 500)
begin = st.integers(0, 100)

STEPS = np.arange(0, 1500, dtype=np.float32)


def _non_increasing(values, slack=1e-6):
  values = np.asarray(values, np.float64)
  return np.all(np.diff(values) <= slack * np.max(np.abs(values)) + 1e-12)


def _within(values, lo, hi, slack=1e-6):
  values = np.asarray(values, np.float64)
  tol = slack * max(abs(lo), abs(hi), 1e-12)
  return np.all(values >= lo - tol) and np.all(values <= hi + tol)


@given(init=lr, f=frac, power=st.floats(0.1, 5.0), steps=length, b=begin, cycle=st.booleans())
def test_polynomial_decay_never_increases_and_stays_in_bounds(init, f, power, steps, b, cycle):
  end = init * f
  values = lrjax.polynomial(init, end, power, steps, b, cycle)(STEPS)
  assert _within(values, end, init)
  if not cycle:
    assert _non_increasing(values)


@given(init=lr, steps=length, rate=st.floats(0.01, 0.999), b=begin, stair=st.booleans())
def test_exponential_decay_never_increases(init, steps, rate, b, stair):
  values = lrjax.exponential_decay(init, steps, rate, b, stair)(STEPS)
  assert _non_increasing(values)
  assert _within(values, 0.0, init)


@given(init=lr, f=frac, steps=length, exponent=st.floats(0.2, 4.0))
def test_cosine_decay_never_increases_and_stays_in_bounds(init, f, steps, exponent):
  end = init * f
  values = lrjax.cosine_decay(init, steps, end, exponent)(STEPS)
  assert _non_increasing(values)
  assert _within(values, end, init)


@given(init=lr, step=length, gamma=frac)
def test_step_decay_never_increases(init, step, gamma):
  assert _non_increasing(lrjax.step_decay(init, step, gamma)(STEPS))


@given(init=lr, milestones=st.lists(st.integers(0, 1400), max_size=20), gamma=frac)
def test_multistep_decay_never_increases(init, milestones, gamma):
  assert _non_increasing(lrjax.multistep_decay(init, sorted(milestones), gamma)(STEPS))


@given(init=lr, steps=length, rate=st.floats(0.0, 10.0), stair=st.booleans())
def test_inverse_time_decay_never_increases(init, steps, rate, stair):
  assert _non_increasing(lrjax.inverse_time_decay(init, steps, rate, stair)(STEPS))


@given(peak=lr, warmup=st.integers(1, 300), tau=st.one_of(st.none(), st.floats(1.0, 1e4)))
def test_inverse_sqrt_rises_then_never_increases(peak, warmup, tau):
  values = np.asarray(lrjax.inverse_sqrt(peak, warmup, tau)(STEPS))
  assert _within(values, 0.0, peak)
  assert _non_increasing(values[warmup:])
  assert np.all(np.diff(values[:warmup + 1]) >= 0)


@given(peak=lr, w=st.integers(0, 200), s=st.integers(0, 500), d=length, fi=frac, fe=frac,
       shape=st.sampled_from(["1-sqrt", "linear", "cosine"]))
def test_wsd_stays_in_bounds_and_cooldown_never_increases(peak, w, s, d, fi, fe, shape):
  init, end = peak * fi, peak * fe
  values = np.asarray(lrjax.wsd(peak, w, s, d, init, end, shape)(STEPS))
  assert _within(values, min(init, end), peak)
  assert _non_increasing(values[w:])


@given(base=lr, f=st.floats(1.0, 100.0), up=length, down=st.one_of(st.none(), length),
       mode=st.sampled_from(["triangular", "triangular2", "exp_range"]),
       gamma=st.floats(0.9, 1.0))
def test_cyclic_stays_between_its_bounds(base, f, up, down, mode, gamma):
  values = lrjax.cyclic(base, base * f, up, down, mode, gamma)(STEPS)
  assert _within(values, base, base * f)


@given(init=lr, period=length, mult=st.floats(1.0, 3.0), decay=st.floats(0.1, 1.0), f=frac)
def test_cosine_restarts_stay_in_bounds(init, period, mult, decay, f):
  end = init * f
  values = lrjax.cosine_restarts(init, period, mult, decay, end)(STEPS)
  assert _within(values, end, init)


@given(peak=lr, total=st.integers(60, 1500), pct=st.floats(0.05, 0.45),
       anneal=st.sampled_from(["cos", "linear"]), three=st.booleans())
def test_one_cycle_stays_between_min_and_peak(peak, total, pct, anneal, three):
  values = np.asarray(lrjax.one_cycle(peak, total, pct, anneal, three_phase=three)(STEPS))
  assert _within(values, peak / 25.0 / 1e4, peak)
  assert values[0] == pytest.approx(peak / 25.0, rel=1e-5)
  assert values[-1] == pytest.approx(peak / 25.0 / 1e4, rel=1e-4)


@given(inner=st.sampled_from(["cosine", "constant", "step"]), w=st.integers(1, 300),
       init=st.floats(1e-4, 1.0), shape=st.sampled_from(["linear", "cosine", "exponential"]),
       peak=st.floats(1e-3, 10.0))
def test_warmup_joint_is_continuous(inner, w, init, shape, peak):
  base = {"cosine": lrjax.cosine_decay(peak, 1000), "constant": lrjax.constant(peak),
          "step": lrjax.step_decay(peak, 100)}[inner]
  s = lrjax.warmup(base, w, init, shape)
  # At the joint the ramp has reached schedule(0), the value the schedule takes next.
  eps = 1e-3
  before = float(cases.at(s, w - eps))  # jitted, the schedule an argument: no compile per draw
  at = float(s(w))
  assert at == np.float32(peak)
  # The ramp's slope in its fraction q = t / w is at most max of the shapes' slopes.
  slope = max(abs(peak - init) * np.pi / 2, peak * abs(np.log(peak / init)))
  assert abs(before - at) <= 1.01 * slope * eps / w + 1e-6 * max(peak, init)
  assert float(s(0)) == pytest.approx(init, rel=1e-6)


@given(boundaries=st.lists(st.integers(0, 2000), min_size=1, max_size=30, unique=True),
       data=st.data())
def test_piecewise_linear_stays_within_its_points(boundaries, data):
  boundaries = sorted(boundaries)
  values = data.draw(st.lists(st.floats(0.0, 1.0), min_size=len(boundaries),
                              max_size=len(boundaries)))
  out = lrjax.piecewise_linear(boundaries, values)(STEPS)
  assert _within(out, min(values), max(values))
  np.testing.assert_allclose(out, np.interp(STEPS, boundaries, values), rtol=1e-5, atol=1e-6)
