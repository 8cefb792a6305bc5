"""lrjax.plan: the laws against their formulas and the source's published fit, fitting, planning,
CSV, CLI and bad input.

Expected values come from the papers' formulas written here as plain NumPy loops, and from the
multi-power-law repository's published parameters and metrics, never from lrjax's output.
"""

import importlib.util
import json
import os

import numpy as np
import pytest

import lrjax
from lrjax import plan
from conftest import optimized, run_cli
from lrjax.plan._cli import baselines

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "bench_plan", os.path.join(HERE, "..", "benchmarks", "plan.py"))
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

# Published by the source for 25M (its README): L0, A, alpha, B, C, beta, gamma.
SOURCE_25M = dict(L0=3.040, A=0.525, alpha=0.508, B=363.788, C=2.066, beta=0.583, gamma=0.641)
MP = dict(L0=3.0, A=0.5, alpha=0.5, B=400.0, C=2.0, beta=0.6, gamma=0.6)


def multi_power_formula(p, lrs, steps):
  """Luo et al. eq. (the source's evaluation): a loop over every logged step and update."""
  out = []
  for s in steps:
    s1 = sum(lrs[: s + 1])
    drop = 0.0
    for k in range(1, s + 1):
      g = lrs[k - 1] - lrs[k]
      if g != 0:
        sk = sum(lrs[k: s + 1])
        drop += g * (1 - (p["C"] * lrs[k] ** -p["gamma"] * sk + 1) ** -p["beta"])
    out.append(p["L0"] + p["A"] * s1 ** -p["alpha"] - p["B"] * drop)
  return np.array(out)


def annealing_formula(p, lrs, steps, decay):
  """Tissue et al.: m_i = decay m_{i-1} + (eta_{i-1} - eta_i), from the first peak."""
  peak = int(np.argmax(lrs))
  m, s2, out, s1 = 0.0, 0.0, [], 0.0
  for i in range(steps[-1] + 1):
    s1 += lrs[i]
    m = decay * m + ((lrs[i - 1] - lrs[i]) if i > peak else 0.0)
    s2 += m
    if i in steps:
      out.append(p["L0"] + p["A"] * s1 ** -p["alpha"] - p["C"] * s2)
  return np.array(out)


def small_schedule(n=240):
  t = np.arange(n)
  warm = 20
  lrs = np.where(t < warm, 1e-3 * t / warm, 1e-3 * (0.55 + 0.45 * np.cos(np.pi * (t - warm) /
                                                                          (n - warm))))
  lrs[150:170] = lrs[150]            # a flat stretch (zero gaps) and a rise (negative gaps)
  lrs[200:] = lrs[200:] + 2e-4
  return lrs


def test_multi_power_matches_formula_exactly_and_binned_closely():
  lrs = small_schedule()
  steps = np.arange(20, 240, 13)
  expected = multi_power_formula(MP, lrs, steps)
  exact = plan.Law("multi_power", MP, resolution=None).predict(lrs, steps)
  np.testing.assert_allclose(exact, expected, rtol=1e-12)
  binned = plan.Law("multi_power", MP).predict(lrs, steps)           # resolution 64
  np.testing.assert_allclose(binned, expected, rtol=3e-5)
  coarse = plan.Law("multi_power", MP, resolution=8).predict(lrs, steps)
  np.testing.assert_allclose(coarse, expected, rtol=6e-4)
  assert plan.Law("multi_power", MP, resolution=None).final_loss(lrs) == pytest.approx(
      multi_power_formula(MP, lrs, [239])[0], rel=1e-12)


def test_annealing_matches_formula():
  lrs = small_schedule()
  steps = np.arange(20, 240, 13)
  p = dict(L0=2.0, A=0.3, alpha=0.4, C=50.0)
  np.testing.assert_allclose(plan.Law("annealing", p, decay=0.99).predict(lrs, steps),
                             annealing_formula(p, lrs, list(steps), 0.99), rtol=1e-12)
  assert plan.Law("annealing", p, decay=0.99).final_loss(lrs) == pytest.approx(
      annealing_formula(p, lrs, [239], 0.99)[0], rel=1e-12)


@pytest.mark.parametrize("name", bench.TRAIN + bench.HELD_OUT)
def test_public_schedules_are_the_documented_rates(name):
  """benchmarks/data/loss-curves/README.md's table, written out in NumPy."""
  p, w = 3e-4, 2160
  kind, arg = name.split("_")[0], name.split("_")[-1]
  n = 16000 if kind == "wsdcon" else int(arg) if kind in ("cosine", "constant") else 24000
  t = np.arange(w, n)
  if kind == "constant":
    rest = np.full(t.size, p)
  elif kind == "cosine":
    rest = 3e-5 + 0.5 * (p - 3e-5) * (1 + np.cos(np.pi * (t - w) / (n - w)))
  elif kind == "wsdcon":
    rest = np.where(t < 8000, p, int(arg) * 1e-5)
  elif kind == "wsdld":
    rest = np.where(t < 20000, p, p * (1 - (t - 20000) / 4000) + 3e-5 * (t - 20000) / 4000)
  else:
    rest = np.where(t < 20000, p, p ** ((24000 - t) / 4000) * 3e-5 ** ((t - 20000) / 4000))
  expected = np.concatenate([np.linspace(0, p, w), rest])
  got = bench.public_rates(name)
  np.testing.assert_allclose(got, expected, rtol=2e-6, atol=1e-12)


@pytest.fixture(scope="module")
def public_25m():
  return (bench.public_curves("25M", bench.TRAIN), bench.public_curves("25M", bench.HELD_OUT))


def test_source_parameters_reproduce_the_source_metrics(public_25m):
  """The source's published 25M parameters through our law give its published held-out means
  (0.9988 / 0.00110 / 0.00409; parameters rounded to 3 decimals, hence the tolerance)."""
  _, held = public_25m
  rows = plan.evaluate(plan.Law("multi_power", SOURCE_25M), held)
  r2, mean, worst = bench.mean_metrics(rows)
  assert r2 == pytest.approx(0.9988, abs=2e-4)
  assert mean == pytest.approx(0.00110, rel=0.08)
  assert worst == pytest.approx(0.00409, rel=0.05)
  exact = plan.Law("multi_power", SOURCE_25M, resolution=None)
  binned = plan.Law("multi_power", SOURCE_25M)
  c = held[0]
  sel = slice(None, None, 40)
  np.testing.assert_allclose(binned.predict(c.lrs, c.steps[sel]),
                             exact.predict(c.lrs, c.steps[sel]), rtol=1e-5)


@pytest.fixture(scope="module")
def fitted_25m(public_25m):
  train, _ = public_25m
  with optimized():
    return plan.fit(train)


def test_fit_on_three_public_curves_predicts_the_other_six(public_25m, fitted_25m):
  """benchmarks/README.md records 0.99822 / 0.00119 / 0.00411 (source: 0.9988 / 0.00110 /
  0.00409); a regression of the fit fails here."""
  _, held = public_25m
  r2, mean, worst = bench.mean_metrics(plan.evaluate(fitted_25m, held))
  assert r2 > 0.9980 and mean < 0.00125 and worst < 0.0043
  assert set(fitted_25m.params) == set(plan.PARAM_NAMES["multi_power"])
  again = plan.Law.from_config(json.loads(json.dumps(fitted_25m.to_config())))
  assert again == fitted_25m


@pytest.mark.optimized  # L-BFGS loops run long enough for LLVM's passes to pay
def test_fit_recovers_a_law_from_its_own_curves():
  """Noise-free curves made by the formula: the fit reproduces them and predicts a new one."""
  n = 3000
  t = np.arange(n)
  warm = np.minimum(t / 200, 1.0) * 1e-3
  scheds = {"constant": warm,
            "cosine": np.where(t < 200, warm, 1e-4 + 0.45e-3 * (1 + np.cos(np.pi * (t - 200)
                                                                            / (n - 200)))),
            "step": np.where(t < 1500, warm, 3e-4)}
  steps = np.arange(200, n, 50)
  truth = dict(L0=2.5, A=0.4, alpha=0.45, B=300.0, C=1.5, beta=0.55, gamma=0.6)
  curves = [(v, steps, multi_power_formula_fast(truth, v, steps)) for k, v in scheds.items()
            if k != "step"]
  law = plan.fit(curves, prior_weight=0.0, max_iters=200)
  new = scheds["step"]
  np.testing.assert_allclose(law.predict(new, steps), multi_power_formula_fast(truth, new, steps),
                             rtol=1e-3)
  ann = plan.fit(curves, law="annealing")
  assert ann.law == "annealing" and all(v > 0 for v in ann.params.values())


def multi_power_formula_fast(p, lrs, steps):
  """The same formula, vectorised over k (for longer curves)."""
  out = []
  for s in steps:
    k = np.arange(1, s + 1)
    g = lrs[k - 1] - lrs[k]
    tail = np.cumsum(lrs[: s + 1][::-1])[::-1][k]
    with np.errstate(divide="ignore"):
      x = np.where(g != 0, p["C"] * lrs[k] ** -p["gamma"] * tail, 0.0)
    out.append(p["L0"] + p["A"] * lrs[: s + 1].sum() ** -p["alpha"]
               - p["B"] * np.sum(np.where(g != 0, g * (1 - (x + 1) ** -p["beta"]), 0.0)))
  return np.array(out)


@pytest.mark.optimized  # L-BFGS loops run long enough for LLVM's passes to pay
def test_optimize_plans_below_cosine_and_wsd():
  law = plan.Law("multi_power", SOURCE_25M)
  total, peak, warm = 6000, 3e-4, 500
  planned = plan.optimize(law, total, peak, warm, knots=40)
  values = np.asarray(planned(np.arange(total)), dtype=np.float64)
  assert values[0] == 0.0 and values[warm] == pytest.approx(peak, rel=1e-6)
  assert np.all(np.diff(values[warm:]) <= 1e-6 * peak) and values.min() >= 0  # float32
  np.testing.assert_allclose(values[:warm], peak * np.arange(warm) / warm, rtol=1e-6)
  table = plan.compare(law, {"planned": planned,
                             **baselines(total, peak, warm)}, total)
  assert list(table)[0] == "planned"
  # a config round trip gives the same schedule
  again = lrjax.from_config(json.loads(json.dumps(planned.to_config())))
  np.testing.assert_array_equal(np.asarray(again(np.arange(total))), values.astype(np.float32))
  # the planner's own final loss (every term exact) is the law's prediction at the last update
  exact = plan.Law("multi_power", SOURCE_25M, resolution=None)
  assert table["planned"] == pytest.approx(exact.final_loss(values), rel=2e-5)


@pytest.mark.optimized  # L-BFGS loops run long enough for LLVM's passes to pay
def test_optimize_moves_small_drops():
  """A law on which L-BFGS alone stalled above WSD (charlm's in benchmarks/plan.py): with the
  Adam phase the plan ends below WSD and below the L-BFGS-only plan."""
  law = plan.Law("multi_power", dict(L0=2e-9, A=1.664, alpha=0.2883, B=74.87, C=0.9972,
                                     beta=0.4996, gamma=0.4945))
  total, peak, warm = 1200, 3e-3, 60
  wsd = law.final_loss((baselines(total, peak, warm)["wsd (20% cooldown)"], total))
  stalled = law.final_loss((plan.optimize(law, total, peak, warm, adam_steps=0), total))
  planned = law.final_loss((plan.optimize(law, total, peak, warm), total))
  assert planned < wsd < stalled


def test_csv_round_trips(tmp_path):
  s = lrjax.warmup_cosine_decay(0.0, 1e-3, 10, 100)
  path = str(tmp_path / "a.csv")
  plan.write_csv(path, s, [20, 50, 99], [3.0, 2.5, 2.0])
  c = plan.read_csv(path)
  assert c.name == "a" and c.steps.tolist() == [20, 50, 99]
  np.testing.assert_allclose(c.lrs, np.asarray(s(np.arange(100))))
  rates = np.linspace(1e-3, 1e-4, 30)
  plan.write_csv(path, rates, [5, 29], [2.0, 1.0])                 # sparse: a JSON list
  np.testing.assert_array_equal(plan.read_csv(path).lrs, rates)
  plan.write_csv(path, rates, np.arange(30), np.linspace(3, 2, 30))  # dense: the lr column
  with open(path) as f:
    assert not f.readline().startswith("#")
  np.testing.assert_array_equal(plan.read_csv(path).lrs, rates)
  with open(path, "w") as f:
    f.write("step,lr,loss\n5,0.1,2.0\n9,0.1,1.9\n")
  with pytest.raises(ValueError, match="does not name its schedule"):
    plan.read_csv(path)
  assert plan.read_csv(path, lrs=np.full(10, 0.1)).steps.tolist() == [5, 9]
  with open(path, "w") as f:
    f.write("update,loss\n1,2\n")
  with pytest.raises(ValueError, match="header 'step,lr,loss'"):
    plan.read_csv(path)
  with open(path, "w") as f:
    f.write("step,lr,loss\n0,0.1,x\n")
  with pytest.raises(ValueError, match="line 2"):
    plan.read_csv(path)


@pytest.mark.parametrize("curve, match", [
    ((np.full(10, 0.1), [1, 2], [1.0]), "one length"),
    ((np.full(10, 0.1), [1, 2], [1.0, 0.0]), "finite and > 0"),
    ((np.full(10, 0.1), [2, 1], [1.0, 1.0]), "strictly increasing"),
    ((np.full(3, 0.1), [1, 5], [1.0, 1.0]), "holds 3 rates"),
    ((np.linspace(0, 1, 100), [10, 20], [1.0, 1.0]), "inside the warmup"),
    ((np.full(10, -0.1), [1, 2], [1.0, 1.0]), "finite and >= 0"),
    ("not a curve", "must be \\(lrs, steps, losses\\)"),
])
def test_bad_curves_are_clear_errors(curve, match):
  with pytest.raises(ValueError, match=match):
    plan.fit([curve])


def test_bad_arguments_are_clear_errors():
  c = (np.full(100, 0.1), np.arange(10, 100, 10), np.linspace(3, 2, 9))
  with pytest.raises(ValueError, match="law must be one of"):
    plan.fit([c], law="power")
  with pytest.raises(ValueError, match="starts must be an int >= 1"):
    plan.fit([c], starts=0)
  with pytest.raises(ValueError, match="at least one curve"):
    plan.fit([])
  with pytest.raises(ValueError, match="has parameters"):
    plan.Law("annealing", MP)
  law = plan.Law("multi_power", MP)
  with pytest.raises(ValueError, match="warmup_steps must be < total_steps - 1"):
    plan.optimize(law, 100, 1e-3, 100)
  with pytest.raises(ValueError, match="peak_value must be finite and > 0"):
    plan.optimize(law, 100, 0.0)
  with pytest.raises(ValueError, match="has 50 rates"):
    plan.compare(law, {"a": np.full(50, 1e-3)}, 100)
  with pytest.raises(ValueError, match="needs its length"):
    law.final_loss(lrjax.constant(1e-3))


@pytest.mark.optimized  # L-BFGS loops run long enough for LLVM's passes to pay
def test_cli_fit_predict_optimize(tmp_path, capsys):
  law = plan.Law("multi_power", SOURCE_25M)
  paths = []
  for name, sched in (("constant", lrjax.join([lrjax.linear(0.0, 3e-4, 200),
                                               lrjax.constant(3e-4)], [200])),
                      ("cosine", lrjax.warmup_cosine_decay(0.0, 3e-4, 200, 3000))):
    steps = np.arange(200, 3000, 50)  # test_fit_recovers_a_law_from_its_own_curves's shapes
    path = str(tmp_path / f"{name}.csv")
    plan.write_csv(path, sched, steps, law.predict((sched, 3000)[0], steps))
    paths.append(path)
  out = str(tmp_path / "law.json")
  r = run_cli(capsys, "plan", "fit", *paths, "-o", out, "--plot", str(tmp_path / "fit.png"))
  assert r.returncode == 0, r.stderr
  assert "multi_power law fitted to 2 curve(s)" in r.stdout and os.path.exists(out)
  assert "fits these curves poorly" not in r.stdout
  assert os.path.getsize(tmp_path / "fit.png") > 10_000
  r = run_cli(capsys, "plan", "predict", out, paths[1])
  assert r.returncode == 0 and "cosine" in r.stdout
  sched_out = str(tmp_path / "planned.json")
  r = run_cli(capsys, "plan", "optimize", out, "--steps", "2000", "--peak", "3e-4", "--warmup",
              "200", "--knots", "20", "-o", sched_out, "--plot", str(tmp_path / "plan.png"))
  assert r.returncode == 0, r.stderr
  assert r.stdout.splitlines()[1].split()[0] == "planned"   # lowest first
  with open(sched_out) as f:
    assert lrjax.from_config(json.load(f))(0) == 0.0
  # Noise logged on the same schedules and steps: no law fits it (and the fit reuses the
  # program compiled for the curves above, their shapes being the same).
  rng = np.random.default_rng(0)
  noisy = [str(tmp_path / f"noisy{i}.csv") for i in range(2)]
  for path, name in zip(noisy, ("constant", "cosine")):
    curve = plan.read_csv(str(tmp_path / f"{name}.csv"))
    plan.write_csv(path, curve.lrs, curve.steps, rng.uniform(0.5, 2.0, curve.steps.size))
  r = run_cli(capsys, "plan", "fit", *noisy, "-o", str(tmp_path / "noisy.json"))
  assert r.returncode == 0 and "fits these curves poorly" in r.stdout
  for args, match in [(("plan",), "plan needs a command"),
                      (("plan", "fit", str(tmp_path / "missing.csv")), "missing.csv"),
                      (("plan", "predict", paths[0], paths[0]), "is not a law JSON file"),
                      (("plan", "optimize", out, "--peak", "1e-3"), "--steps"),
                      (("plan", "optimize", out, "--steps", "10", "--peak", "-1"), "--peak"),
                      (("plan", "fit", *paths, "-o", str(tmp_path / "no" / "law.json")),
                       "does not exist")]:
    r = run_cli(capsys, *args)
    assert r.returncode == 2 and match in r.stderr, (args, r.stderr)
