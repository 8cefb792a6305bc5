"""Optax's and Keras' own schedule tests, run against lrjax's drop-ins (``peer_dropins.py``).

Both peers ship their schedule tests inside their packages; each test here runs one of them, with
the peer's schedules replaced by the lrjax counterparts the README names. A test fails on any
failure except a listed, documented difference: each listed peer test must still fail (else the
list is stale), and the README line that documents it must still be there.
"""

import functools
import importlib.util
import os
import pathlib
import unittest

import pytest

import peer_dropins

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()

_NEGATIVE = "Learning rates are never negative"
_OPTAX_CONSTANT = "Optax silently turns `transition_steps <= 0` (and `decay_rate == 0`)"
# Peer test -> the README text that documents why lrjax differs there.
DOCUMENTED = {
    "_schedule_test.ExponentialTest.test_nonvalid_decay_rate0": _OPTAX_CONSTANT,
    "_schedule_test.ExponentialTest.test_nonvalid_decay_rate1": _OPTAX_CONSTANT,
    "_schedule_test.ExponentialTest.test_nonvalid_transition_steps0": _OPTAX_CONSTANT,
    "_schedule_test.ExponentialTest.test_nonvalid_transition_steps1": _OPTAX_CONSTANT,
    "_schedule_test.PolynomialTest.test_zero_steps_schedule": _OPTAX_CONSTANT,
    "_schedule_test.PiecewiseConstantTest.test_negative": _NEGATIVE,
    "_schedule_test.WarmupCosineDecayTest.test_with_exponent": _NEGATIVE,
    "_schedule_test.WarmupCosineDecayTest.test_zero_peak_value": _NEGATIVE,
    "_schedule_test.PiecewiseInterpolateTest.test_zero_interval_size":
        "Breakpoints are strictly increasing",
    "_schedule_test.OneCycleTest.test_cosine": "`one_cycle` is PyTorch's `OneCycleLR`",
    "learning_rate_schedule_test.PiecewiseConstantDecayTest.test_piecewise_values":
        "`piecewise_constant` switches to the next value *at* a boundary step",
    "learning_rate_schedule_test.PiecewiseConstantDecayTest.test_boundary_values":
        "`piecewise_constant` switches to the next value *at* a boundary step",
}


def _load(path, replace):
  """The peer's test module at ``path``, its schedule modules swapped by ``replace``."""
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  replace(module)
  return module


def _optax_module(name):
  import optax

  def replace(module):
    for attr in ("_schedule", "_join"):
      if hasattr(module, attr):
        setattr(module, attr, peer_dropins.optax_namespace(getattr(module, attr)))
  return _load(pathlib.Path(optax.__file__).parent / "schedules" / name, replace)


def _keras_module():
  os.environ.setdefault("KERAS_BACKEND", "jax")
  keras = pytest.importorskip("keras")
  if keras.backend.backend() != "jax":
    pytest.skip("lrjax.keras needs KERAS_BACKEND=jax")

  def replace(module):
    module.schedules = peer_dropins.keras_namespace(module.schedules)
  path = (pathlib.Path(keras.__file__).parent / "src" / "optimizers" / "schedules" /
          "learning_rate_schedule_test.py")
  return _load(path, replace)


def _run(module):
  """Every test of ``module``: {its id: (passed, the failure's last line)}."""
  suite = unittest.defaultTestLoader.loadTestsFromModule(module)
  ids = [test.id() for test in _flatten(suite)]  # running the suite empties it
  result = unittest.TestResult()
  suite.run(result)
  assert result.testsRun == len(ids) > 0
  failed = {t.id(): tb.strip().splitlines()[-1] for t, tb in result.failures + result.errors}
  return {i.split(" ")[0]: (i not in failed, failed.get(i, "")) for i in ids}


@functools.cache
def _results(suite):
  """Each peer suite runs once per process; the tests below read its results."""
  if suite == "keras":
    import jax
    with jax.numpy_rank_promotion("allow"):  # Keras' own model in its fit test broadcasts
      return _run(_keras_module())
  return _run(_optax_module(suite))


def _flatten(suite):
  for item in suite:
    if isinstance(item, unittest.TestSuite):
      yield from _flatten(item)
    else:
      yield item


def _check(results, min_tests):
  assert len(results) >= min_tests, sorted(results)
  undocumented = {k: why for k, (ok, why) in results.items() if not ok and k not in DOCUMENTED}
  assert not undocumented, undocumented
  for key, (ok, _) in results.items():
    if key in DOCUMENTED:
      assert not ok, f"{key} passes now: drop it from DOCUMENTED (and the README's difference?)"
      assert DOCUMENTED[key] in README, (key, DOCUMENTED[key])


def test_optax_schedule_tests_pass_on_lrjax_but_the_documented_differences():
  _check(_results("_schedule_test.py"), min_tests=70)


def test_optax_join_tests_pass_on_lrjax():
  _check(_results("_join_test.py"), min_tests=1)


def test_keras_schedule_tests_pass_on_lrjax_but_the_documented_difference():
  _check(_results("keras"), min_tests=30)


def test_every_documented_difference_is_a_peer_test_that_exists():
  ran = set(_results("_schedule_test.py")) | set(_results("keras"))
  assert set(DOCUMENTED) <= ran, set(DOCUMENTED) - ran
