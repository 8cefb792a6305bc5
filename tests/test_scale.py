"""Many-piece schedules: program size does not grow with the number of pieces.

Timings live in benchmarks/schedule_scaling.py; here we check the structure
that makes them flat: the compiled program for 10,000 pieces has (nearly) the
same number of operations as for 10.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax


def _hlo_ops(fn, *args):
  text = jax.jit(fn).lower(*args).as_text()
  return sum(1 for line in text.splitlines() if " = " in line)


def _piecewise(n):
  return lrjax.piecewise_constant(list(range(10, 10 * n, 10)), list(np.linspace(1, 0, n)))


def _joined(n):
  pieces = [lrjax.cosine_decay(1.0 / (k + 1), 10) for k in range(n)]
  return lrjax.join(pieces, list(range(10, 10 * n, 10)))


@pytest.mark.parametrize("build", [_piecewise, _joined,
                                   lambda n: lrjax.multistep_decay(1.0, list(range(n)), 0.99),
                                   lambda n: lrjax.piecewise_linear(list(range(n)),
                                                                    [1.0] * n)],
                         ids=["piecewise_constant", "join", "multistep", "piecewise_linear"])
def test_program_size_is_flat_in_the_number_of_pieces(build):
  small = build(10)
  large = build(10_000)
  t = jnp.int32(12345)
  ops_small = _hlo_ops(lambda s, t: s(t), small, t)
  ops_large = _hlo_ops(lambda s, t: s(t), large, t)
  assert ops_large <= ops_small + 2, (ops_small, ops_large)


def test_optax_piecewise_grows_linearly_for_contrast():
  def optax_piecewise(n):
    return optax.piecewise_constant_schedule(1.0, {10 * k: 0.99 for k in range(1, n)})
  small = _hlo_ops(optax_piecewise(10), jnp.int32(5))
  large = _hlo_ops(optax_piecewise(200), jnp.int32(5))
  assert large > 10 * small


def test_join_of_10000_pieces_matches_its_definition():
  s = _joined(10_000)
  t = np.array([0, 9, 10, 15, 99_995, 99_999, 100_000, 250_000])
  k = np.minimum(t // 10, 9_999)
  local = np.minimum(t - 10 * k, 10)
  want = 1.0 / (k + 1) * (1 + np.cos(np.pi * local / 10)) / 2
  np.testing.assert_allclose(jax.jit(s)(t), want, rtol=1e-5, atol=1e-9)


def test_piecewise_constant_of_10000_pieces_matches_its_definition():
  values = np.linspace(1, 0, 10_000)
  s = _piecewise(10_000)
  t = np.array([0, 9, 10, 55_555, 99_990, 10**6])
  np.testing.assert_allclose(jax.jit(s)(t), values[np.minimum(t // 10, 9_999)], rtol=1e-6)
