"""Each schedule against its reference formula at every step, boundary and beyond."""

import jax
import numpy as np
import pytest

import lrjax
import reference as ref
from cases import CASE_IDS, CASES, allclose_rule, assert_jit_close, at, steps_for


def _expected(case, steps):
  unique, index = np.unique(steps, return_inverse=True)  # the padding repeats the last step
  return np.array([case.ref(float(t)) for t in unique])[index]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_matches_reference(case):
  schedule = case.build()
  steps = steps_for(case)
  assert_jit_close(lambda: at(schedule, steps.astype(np.float32)),
                   lambda: _expected(case, steps), (schedule, "steps", steps[:12]),
                   close=allclose_rule(rtol=2e-5, atol=lambda want: 2e-6 * np.max(np.abs(want))))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_scalar_int_steps_match_reference(case):
  schedule = case.build()
  for t in (0, 1, case.horizon // 2, case.horizon - 1, case.horizon, 2 * case.horizon):
    got = float(schedule(t))
    want = case.ref(float(t))
    assert got == pytest.approx(want, rel=2e-5, abs=1e-6), t


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_x64_gives_float64_and_tighter_values(case):
  with jax.enable_x64(True):
    schedule = case.build()
    steps = steps_for(case)
    got = schedule(steps)
    assert got.dtype == np.float64
    np.testing.assert_allclose(np.asarray(got), _expected(case, steps), rtol=1e-10,
                               atol=1e-12)


def test_hand_computed_values():
  """A few values worked out by hand, independent of reference.py."""
  # StepLR(base=1, step_size=30, gamma=0.1) at 0, 29, 30, 59, 60.
  s = lrjax.step_decay(1.0, 30)
  np.testing.assert_allclose(s(np.array([0, 29, 30, 59, 60])), [1, 1, .1, .1, .01], rtol=1e-6)
  # optax.exponential_decay(1.0, 1000, 0.5): 0.5 ** (t / 1000).
  s = lrjax.exponential_decay(1.0, 1000, 0.5)
  np.testing.assert_allclose(s(np.array([0, 500, 1000, 3000])),
                             [1.0, 2 ** -0.5, 0.5, 0.125], rtol=1e-6)
  # MultiStepLR milestones [2, 2, 5]: gamma^2 from step 2, gamma^3 from step 5.
  s = lrjax.multistep_decay(1.0, [2, 2, 5], 0.5)
  np.testing.assert_allclose(s(np.arange(7)), [1, 1, .25, .25, .25, .125, .125])
  # OneCycleLR(max_lr=1, total_steps=10, pct_start=0.5, linear, div 10, final_div 10):
  # phase ends 4 and 9; initial 0.1, min 0.01.
  s = lrjax.one_cycle(1.0, 10, 0.5, "linear", 10.0, 10.0)
  np.testing.assert_allclose(
      s(np.arange(12)),
      [0.1, 0.325, 0.55, 0.775, 1.0, 0.802, 0.604, 0.406, 0.208, 0.01, 0.01, 0.01],
      rtol=1e-5)
  # CyclicLR(0, 1, step_size_up=2, step_size_down=2, triangular2): 0 .5 1 .5 0 .25 .5 .25 0.
  s = lrjax.cyclic(0.0, 1.0, 2, mode="triangular2")
  np.testing.assert_allclose(s(np.arange(9)), [0, .5, 1, .5, 0, .25, .5, .25, 0], atol=1e-7)
  # SGDR T_0=2, T_mult=2: periods [0,2) [2,6) [6,14).
  s = lrjax.cosine_restarts(1.0, 2, 2.0)
  np.testing.assert_allclose(s(np.array([0, 1, 2, 4, 6, 10, 14])),
                             [1, .5, 1, .5, 1, .5, 1], atol=1e-6)
  # wsd 1-sqrt: k/D = 1/4 gives 1 - 1/2.
  s = lrjax.wsd(1.0, 0, 10, 4)
  assert float(s(11)) == pytest.approx(0.5)


def test_cosine_decay_holds_where_pytorch_rises():
  """Intended difference: CosineAnnealingLR's closed form rises after T_max."""
  s = lrjax.cosine_decay(1.0, 10, end_value=0.1)
  assert float(s(15)) == pytest.approx(0.1)
  assert float(s(10**6)) == pytest.approx(0.1)


def test_large_steps_are_exact_and_do_not_overflow():
  s = lrjax.step_decay(1.0, 1_000_000, 0.5)
  assert float(s(np.int32(2_999_999))) == pytest.approx(0.25)
  assert float(s(np.int32(3_000_000))) == pytest.approx(0.125)
  c = lrjax.cosine_decay(1.0, 2**31 - 1)
  assert float(c(np.int32(2**31 - 1))) == pytest.approx(0.0, abs=1e-6)


def test_negative_steps_are_treated_as_zero():
  s = lrjax.linear(1.0, 0.0, 10)
  assert float(s(-5)) == 1.0


def test_join_pieces_see_relative_steps_like_optax():
  import optax
  pieces_l = [lrjax.linear(0.0, 1.0, 7), lrjax.exponential_decay(1.0, 3, 0.5),
              lrjax.cosine_decay(0.5, 11)]
  pieces_o = [optax.linear_schedule(0.0, 1.0, 7), optax.exponential_decay(1.0, 3, 0.5),
              optax.cosine_decay_schedule(0.5, 11)]
  ours = lrjax.join(pieces_l, [7, 19])
  theirs = optax.join_schedules(pieces_o, [7, 19])
  t = np.arange(45)
  np.testing.assert_allclose(ours(t), theirs(t), rtol=1e-6, atol=1e-7)


def test_join_accepts_optax_schedules_and_floats():
  import optax
  s = lrjax.join([0.1, optax.linear_schedule(1.0, 0.0, 10)], [5])
  np.testing.assert_allclose(s(np.array([0, 4, 5, 10, 15, 30])), [.1, .1, 1, .5, 0, 0],
                             atol=1e-7)


def test_join_many_structures_uses_switch_and_matches_loop():
  pieces = []
  for k in range(12):
    if k % 3 == 0:
      pieces.append(lrjax.cosine_decay(1.0 + k, 5))
    elif k % 3 == 1:
      pieces.append(lrjax.constant(0.5 * k))
    else:
      pieces.append(lrjax.cyclic(0.1, 1.0 + k, 2, mode="triangular2"))
  bounds = [5 * (k + 1) for k in range(11)]
  s = lrjax.join(pieces, bounds)
  assert len(s.groups) == 3
  t = np.arange(70)
  want = [pieces[sum(b <= x for b in bounds)](x - ([0] + bounds)[sum(b <= x for b in bounds)])
          for x in t]
  np.testing.assert_allclose(s(t), np.asarray(want, dtype=np.float32), rtol=1e-6)
  np.testing.assert_allclose(jax.jit(s)(t), s(t), rtol=1e-6)


def test_nested_join_of_piecewise_pieces():
  inner = [lrjax.piecewise_constant([2, 4], [1.0, 0.5, 0.25]),
           lrjax.piecewise_constant([1, 3], [2.0, 1.0, 0.1])]
  s = lrjax.join(inner, [6])
  t = np.arange(12)
  want = [1, 1, .5, .5, .25, .25, 2, 1, 1, .1, .1, .1]
  np.testing.assert_allclose(s(t), want, rtol=1e-6)
  outer = lrjax.join([s, lrjax.constant(0.0)], [12])
  np.testing.assert_allclose(outer(np.arange(14)), want + [0, 0], rtol=1e-6)


def test_interpolation_ends_are_exact_in_float32():
  """Regression: ``a + (b - a) * 1`` missed a small ``b`` by 0.2% in float32."""
  s = lrjax.one_cycle(1.0, 60, 0.25, "linear")
  assert float(s(59)) == np.float32(1.0 / 25 / 1e4)
  w = lrjax.warmup(lrjax.cosine_decay(1.0, 100), 10, 1e-4, "cosine")
  assert float(w(0)) == np.float32(1e-4)
  assert float(lrjax.linear(1.0, 1e-6, 10)(10)) == np.float32(1e-6)
  # Regression: under jit, (t - s) / (e - s) came out 0.99999994 at the last step,
  # leaving one_cycle's final value 1.5% high.
  s = lrjax.one_cycle(1.0, 123, 0.05078125, "linear")
  for t in (122, 1499):
    assert float(jax.jit(s)(np.float32(t))) == np.float32(1.0 / 25 / 1e4)


def test_a_step_of_any_size_and_type_gives_the_held_value():
  """Optax's own case (``_schedule_test.py``): a Python int step of 10**10 returns the end value
  instead of overflowing int32; so does every int or float step, Python or NumPy."""
  steps = [10_000_000_000, 2**40, 10**400, 1e12, np.int64(10**11), np.uint64(2**63),
           np.float64(1e15), np.array([10**12, 10**13])]
  held = [(lrjax.cosine_decay(1.0, 100, end_value=0.1), 0.1),
          (lrjax.linear(1.0, 0.25, 50), 0.25),
          (lrjax.wsd(1.0, 10, 30, 20, end_value=0.05), 0.05),
          (lrjax.exponential_decay(1.0, 10, 0.5, end_value=0.2), 0.2)]
  for schedule, end in held:
    for step in steps:
      np.testing.assert_allclose(np.asarray(schedule(step)), end, rtol=1e-6,
                                 err_msg=f"{schedule!r} at {step!r}")


def test_piecewise_constant_differs_from_keras_only_at_the_boundary_steps():
  """The documented difference: Keras switches one step after the boundary."""
  boundaries, values = [5, 12, 30], [1.0, 0.5, 0.2, 0.05]
  s = lrjax.piecewise_constant(boundaries, values)
  for t in range(45):
    keras = ref.keras_piecewise_constant(boundaries, values, t)
    if t in boundaries:
      assert keras == values[boundaries.index(t)]
      assert float(s(t)) == pytest.approx(values[boundaries.index(t) + 1])
    else:
      assert float(s(t)) == pytest.approx(keras), t
