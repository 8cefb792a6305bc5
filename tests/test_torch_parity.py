"""PyTorch itself as an oracle (optional: runs when torch is installed).

``pip install torch==2.13.0`` (CPU) enables these. The same facts are checked
without torch in test_values.py against transcribed formulas.
"""

import itertools
import warnings

import numpy as np
import pytest

import lrjax

torch = pytest.importorskip("torch")


def _torch_lrs(make_scheduler, n, base=1.0):
  param = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.SGD([param], lr=base)
  sched = make_scheduler(opt)
  out = []
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for _ in range(n):
      out.append(opt.param_groups[0]["lr"])
      opt.step()
      sched.step()
  return np.array(out)


def _check(ours, theirs_lrs, rtol=2e-5):
  t = np.arange(len(theirs_lrs))
  got = np.asarray(ours(t), np.float64)
  np.testing.assert_allclose(got, theirs_lrs, rtol=rtol, atol=1e-7 * np.max(np.abs(theirs_lrs)))


S = torch.optim.lr_scheduler


@pytest.mark.parametrize("step_size,gamma", [(1, 0.9), (7, 0.5), (30, 0.1)])
def test_step_lr(step_size, gamma):
  _check(lrjax.step_decay(1.0, step_size, gamma),
         _torch_lrs(lambda o: S.StepLR(o, step_size, gamma), 100))


@pytest.mark.parametrize("milestones", [[5, 20], [3, 3, 10], [0, 50]])
def test_multistep_lr(milestones):
  _check(lrjax.multistep_decay(1.0, milestones, 0.3),
         _torch_lrs(lambda o: S.MultiStepLR(o, milestones, 0.3), 60))


def test_exponential_lr():
  _check(lrjax.exponential_decay(0.5, 1, 0.95),
         _torch_lrs(lambda o: S.ExponentialLR(o, 0.95), 80, base=0.5))


@pytest.mark.parametrize("start,end,total", [(0.1, 1.0, 10), (1.0, 0.01, 37)])
def test_linear_lr(start, end, total):
  _check(lrjax.linear(start, end, total),
         _torch_lrs(lambda o: S.LinearLR(o, start, end, total), 60))


@pytest.mark.parametrize("power", [0.5, 1.0, 2.0])
def test_polynomial_lr(power):
  _check(lrjax.polynomial(1.0, 0.0, power, 25),
         _torch_lrs(lambda o: S.PolynomialLR(o, 25, power), 40), rtol=1e-4)


@pytest.mark.parametrize("t_max,eta_min", [(10, 0.0), (33, 0.05)])
def test_cosine_annealing_lr_on_its_period(t_max, eta_min):
  _check(lrjax.cosine_decay(1.0, t_max, eta_min),
         _torch_lrs(lambda o: S.CosineAnnealingLR(o, t_max, eta_min), t_max + 1))


@pytest.mark.parametrize("t_0,t_mult,eta_min", [(5, 1, 0.0), (4, 2, 0.01), (3, 3, 0.1)])
def test_cosine_annealing_warm_restarts(t_0, t_mult, eta_min):
  _check(lrjax.cosine_restarts(1.0, t_0, float(t_mult), end_value=eta_min),
         _torch_lrs(lambda o: S.CosineAnnealingWarmRestarts(o, t_0, t_mult, eta_min), 150))


@pytest.mark.parametrize("up,down,mode", list(itertools.product(
    [4, 10], [None, 7], ["triangular", "triangular2", "exp_range"])))
def test_cyclic_lr(up, down, mode):
  gamma = 0.98
  _check(lrjax.cyclic(0.1, 1.0, up, down, mode, gamma),
         _torch_lrs(lambda o: S.CyclicLR(o, 0.1, 1.0, up, down, mode, gamma,
                                         cycle_momentum=False), 90))


@pytest.mark.parametrize("total,pct,anneal,three", list(itertools.product(
    [50, 97], [0.2, 0.3, 0.45], ["cos", "linear"], [False, True])))
def test_one_cycle_lr(total, pct, anneal, three):
  _check(lrjax.one_cycle(2.0, total, pct, anneal, 25.0, 1e3, three),
         _torch_lrs(lambda o: S.OneCycleLR(o, 2.0, total_steps=total, pct_start=pct,
                                           anneal_strategy=anneal, div_factor=25.0,
                                           final_div_factor=1e3, three_phase=three,
                                           cycle_momentum=False), total), rtol=1e-4)


@pytest.mark.parametrize("anneal,epochs", [("cos", 5), ("linear", 8), ("cos", 1)])
def test_swalr(anneal, epochs):
  swa_lr = 0.05
  def make(o):
    return torch.optim.swa_utils.SWALR(o, swa_lr=swa_lr, anneal_epochs=epochs,
                                       anneal_strategy=anneal)
  theirs = _torch_lrs(make, 20, base=0.8)
  # Read before the k-th scheduler.step(): k steps into the annealing.
  ours = lrjax.swa_schedule(0.8, swa_lr, 0, epochs, anneal)
  np.testing.assert_allclose(np.asarray(ours(np.arange(20)), np.float64), theirs, rtol=1e-5)
