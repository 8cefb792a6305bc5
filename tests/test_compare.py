"""``lrjax compare``: a small run end to end, every named optimizer builds, bad input."""

import json

import jax.numpy as jnp
import numpy as np
import optax
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("flax")

from conftest import run_cli  # noqa: E402
from lrjax import cli  # noqa: E402
from lrjax.bench import runner  # noqa: E402


def test_every_named_schedule_and_baseline_builds_and_steps():
  params = {"w": jnp.ones(3)}
  for name, build in runner.optimizers(100, 1e-3).items():
    tx = build()
    state = tx.init(params)
    updates, _ = optax.with_extra_args_support(tx).update(params, state, params,
                                                           value=jnp.float32(1.0))
    assert np.all(np.isfinite(np.asarray(updates["w"]))), name


def test_every_lrjax_schedule_is_selectable():
  import lrjax
  names = set(runner.optimizers(100, 1e-3))
  assert set(lrjax.schedule_names()) - {"function"} <= names
  assert {"reduce_on_plateau", "greedy", "window_decay", "window_search", "hypergradient",
          "optax.warmup_cosine_decay_schedule", "optax.contrib.reduce_on_plateau",
          "optax.contrib.schedule_free_adamw", "optax.contrib.prodigy"} <= names


def test_small_comparison_writes_every_output(tmp_path, capsys):
  code = cli.main(["compare", "--task", "regression", "--schedules", "constant,wsd",
                   "--steps", "40", "--seeds", "2", "--eval-every", "20", "--out",
                   str(tmp_path), "--quiet"])
  assert code == 0
  out = capsys.readouterr().out
  assert "| rank | schedule | final training loss" in out and "wsd" in out
  assert "Ranked by the final training loss" in out
  summary = json.loads((tmp_path / "results.json").read_text())
  assert set(summary["schedules"]) == {"constant", "wsd"}
  curves = summary["schedules"]["wsd"]["curves"]
  assert len(curves) == 2 and curves[0]["steps"] == [20, 40]
  # The rate after every update, not only at evaluations: wsd's warmup is visible.
  every = np.array(curves[0]["lr_every_step"])
  assert every.shape == (40,) and every[0] < every[10] and every[-1] < every[20]
  assert (tmp_path / "lr_every_step.csv").read_text().count("\nwsd,") == 2 * 40
  rows = (tmp_path / "results.csv").read_text().splitlines()
  assert rows[0].startswith("schedule,seed,step") and len(rows) == 1 + 2 * 2 * 2
  for png in ("train_loss_curves.png", "loss_curves.png", "metric_curves.png", "lr_curves.png"):
    assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
  # each run's held-out loss as an lrjax.plan curve: the loss after n updates at update n - 1
  from lrjax import plan
  curve = plan.read_csv(str(tmp_path / "curves" / "wsd_seed1.csv"))
  seed1 = summary["schedules"]["wsd"]["curves"][1]
  assert curve.steps.tolist() == [19, 39]
  np.testing.assert_allclose(curve.losses, seed1["eval_loss"])
  np.testing.assert_allclose(curve.lrs, seed1["lr_every_step"])
  assert sorted(p.name for p in (tmp_path / "curves").iterdir()) == [
      "constant_seed0.csv", "constant_seed1.csv", "wsd_seed0.csv", "wsd_seed1.csv"]


def test_steps_to_target():
  from lrjax.bench.unroll import TrainResult
  r = TrainResult(np.array([10, 20, 30]), np.zeros(3), np.zeros(3), np.array([0.5, 0.9, 0.95]),
                  np.zeros(3), 0.0)
  assert runner.steps_to_target(r, 0.9, True) == 20
  assert runner.steps_to_target(r, 0.99, True) is None
  assert runner.steps_to_target(r, 0.6, False) == 10


@pytest.mark.parametrize("args,message", [
    (["--task", "mnist"], "unknown task 'mnist'"),
    (["--task", "digits,digits"], "--task names a task twice"),
    (["--schedules", "wsd,wsd"], "--schedules: names a schedule twice: wsd"),
    (["--bogus"], "lrjax: error: unrecognized arguments: --bogus"),
    (["--schedules", "cosine"], "unknown schedule 'cosine'"),
    (["--steps", "0"], "must be a positive integer"),
    (["--peak-lr", "-1"], "argument --peak-lr: must be a finite number > 0, got '-1'"),
    (["--peak-lr", "inf"], "argument --peak-lr: must be a finite number > 0, got 'inf'"),
    (["--peak-lr", "nan"], "argument --peak-lr: must be a finite number > 0, got 'nan'"),
    (["--peak-lr", "abc"], "argument --peak-lr: must be a number, got 'abc'"),
    (["--out", "/proc/no/such"], "cannot write to --out"),
])
def test_bad_input_is_one_line(args, message, capsys):
  result = run_cli(capsys, "compare", "--quiet", *args)
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert message in result.stderr


def test_the_schedule_list_comes_from_the_one_registry():
  import lrjax
  from lrjax.schedules._base import preset_names
  assert set(preset_names()) == set(lrjax.schedule_names()) - {"function"}
  assert set(preset_names()) <= set(runner.optimizers(100, 1e-3))


def _row(finals, diverged=0, hits=None):
  finals = np.asarray(finals, float)
  return {"finals": finals.tolist(), "train_finals": (1 - finals).tolist(),
          "final_metric_mean": float(np.mean(finals)),
          "final_metric_std": float(np.std(finals)), "diverged_seeds": diverged,
          "steps_to_target": hits or [None] * len(finals), "wall_time_mean": 1.0}


def _summary(rows, higher=True, seeds=3):
  return {"task": "t", "metric": "accuracy", "target": 0.9, "higher_is_better": higher,
          "steps": 100, "seeds": seeds, "peak_lr": 0.1, "schedules": rows}


def test_overlapping_results_share_a_rank_and_nobody_is_crowned():
  from lrjax.bench import report
  rows = {"a": _row([0.90, 0.92, 0.94]), "b": _row([0.91, 0.93, 0.95]),
          "c": _row([0.50, 0.52, 0.54])}
  # Two standard errors of a - b: 2 * sqrt(2 * 0.02**2 / 3) = 0.033 > 0.01: a tie.
  assert report.rank(rows, True) == {"a": 1, "b": 1, "c": 3}
  assert report.best(rows, True) is None
  table = report.format_table(_summary(rows))
  assert "(best)" not in table and "No single best: b, a are within noise" in table
  assert "| 1 | b |" in table and "| 3 | c |" in table


def test_a_clear_winner_is_marked_best_and_lower_is_better_works():
  from lrjax.bench import report
  rows = {"a": _row([0.10, 0.11, 0.12]), "b": _row([0.50, 0.51, 0.52]),
          "c": _row([0.90, 0.91, 0.92])}
  assert report.rank(rows, False) == {"a": 1, "b": 2, "c": 3}
  assert report.best(rows, False) == "a"
  assert "| 1 | a (best) |" in report.format_table(_summary(rows, higher=False))


def test_a_diverged_run_is_named_and_ranked_last_even_with_a_good_mean():
  from lrjax.bench import report
  rows = {"ok": _row([0.80, 0.81, 0.82]), "boom": _row([0.99, 0.99, 0.99], diverged=1)}
  table = report.format_table(_summary(rows))
  lines = table.splitlines()
  assert lines[3].startswith("| 1 | ok (best) |")
  assert lines[4].startswith("| — | boom (diverged in 1/3 seeds) |")
  assert "Diverged (a NaN/inf, or a final held-out loss above the initial one), ranked last: " \
      "boom." in table


def test_one_seed_says_there_is_no_noise_estimate():
  from lrjax.bench import report
  table = report.format_table(_summary({"a": _row([0.9]), "b": _row([0.8])}, seeds=1))
  assert "One seed: no noise estimate" in table


def test_train_result_diverged():
  from lrjax.bench.unroll import TrainResult
  one = np.ones(2)
  assert not TrainResult(one, one, one, one, one, 0.0, initial_eval_loss=2.0).diverged
  assert TrainResult(one, one, 3 * one, one, one, 0.0, initial_eval_loss=2.0).diverged
  assert TrainResult(one, one, np.array([1, np.nan]), one, one, 0.0, 2.0).diverged
  assert TrainResult(one, np.array([np.inf, 1]), one, one, one, 0.0, 2.0).diverged


def test_profile_score_against_hand_computed_values():
  from lrjax.bench import report
  inf = float("inf")
  # t1: a is fastest (r=1 -> 1), b r=1.5 -> (4-1.5)/3, c r=5 -> 0.
  # t2: nobody reaches the target: every schedule scores 0 there.
  # t3: c is fastest, a r=2 -> 2/3, b misses.
  steps = {"t1": {"a": 100, "b": 150, "c": 500}, "t2": {"a": inf, "b": inf, "c": inf},
           "t3": {"a": 80, "b": inf, "c": 40}}
  got = report.profile_score(steps)
  assert got["a"] == pytest.approx((1 + 0 + 2 / 3) / 3)
  assert got["b"] == pytest.approx((2.5 / 3) / 3)
  assert got["c"] == pytest.approx((0 + 0 + 1) / 3)
  with pytest.raises(ValueError, match="names"):
    report.profile_score({"t1": {"a": 1}, "t2": {"b": 1}})


def test_a_diverging_peak_is_reported_not_crowned(tmp_path):
  code = cli.main(["compare", "--task", "regression", "--schedules", "constant,wsd",
                   "--steps", "30", "--seeds", "2", "--eval-every", "10", "--peak-lr", "1e6",
                   "--out", str(tmp_path), "--quiet"])
  assert code == 0
  summary = json.loads((tmp_path / "results.json").read_text())
  assert summary["schedules"]["constant"]["diverged_seeds"] == 2


def test_several_tasks_print_the_algoperf_score(tmp_path, capsys):
  code = cli.main(["compare", "--task", "regression,digits", "--schedules", "constant,wsd",
                   "--steps", "20", "--seeds", "1", "--eval-every", "10", "--out",
                   str(tmp_path), "--quiet"])
  assert code == 0
  out = capsys.readouterr().out
  assert "AlgoPerf-style score over 2 tasks" in out
  assert (tmp_path / "regression" / "results.json").exists()
  assert (tmp_path / "digits" / "lr_curves.png").exists()


def test_rank_by_training_loss_orders_by_the_lowest_final_training_loss():
  from lrjax.bench import report
  rows = {"a": _row([0.90, 0.91, 0.92]), "b": _row([0.50, 0.51, 0.52])}
  rows["a"]["train_finals"] = [0.50, 0.51, 0.52]  # a: better metric, worse training loss
  rows["b"]["train_finals"] = [0.01, 0.011, 0.012]
  summary = dict(_summary(rows), rank_by="train_loss")
  table = report.format_table(summary)
  assert "| 1 | b (best) |" in table and "| 2 | a |" in table
  assert "Ranked by the final training loss" in table
  assert "| 1 | a (best) |" in report.format_table(dict(summary, rank_by="metric"))


def test_a_wide_spread_that_ranks_above_a_better_mean_is_explained():
  from lrjax.bench import report
  rows = {"best": _row([0.95, 0.95, 0.95]), "steady": _row([0.93, 0.93, 0.931]),
          "noisy": _row([0.99, 0.80, 0.90])}
  ranks = report.rank(rows, True)
  assert ranks == {"best": 1, "noisy": 1, "steady": 2}  # noisy: mean 0.897 < steady's 0.930
  table = report.format_table(_summary(rows))
  assert "noisy: a better rank on a worse mean than a row below" in table


# --- one compiled program per schedule; every peak; your own task -------------------------

MY_TASK = '''
import jax, jax.numpy as jnp
from lrjax.bench import Task

def make_task(validate=True):
  x = jax.random.normal(jax.random.PRNGKey(0), (160, 4))
  y = x @ jnp.arange(1.0, 5.0) + 0.1 * jax.random.normal(jax.random.PRNGKey(1), (160,))
  mse = lambda w, xs, ys: jnp.mean((xs @ w - ys) ** 2)
  def sample(key):
    i = jax.random.randint(key, (16,), 0, 128)
    return x[i], y[i]
  return Task("linear", "test MSE", False, None, init=lambda key: jnp.zeros(4),
              loss_fn=lambda w, b: mse(w, *b),
              evaluate=lambda w: {"loss": mse(w, x[144:], y[144:]),
                                  "metric": mse(w, x[144:], y[144:])},
              sample=sample,
              validate=(lambda w: {"loss": mse(w, x[128:144], y[128:144])}) if validate
              else None)

def no_validation():
  return make_task(validate=False)

not_a_task = 3
'''


def tiny_task(validate=True):
  """``MY_TASK``'s linear regression, built here (a program that compiles in a blink)."""
  namespace: dict = {}
  exec(MY_TASK, namespace)
  return namespace["make_task"](validate)


@pytest.fixture
def my_module(tmp_path, monkeypatch):
  """``my_lrjax_task.py`` in the current folder, as a user writes it."""
  (tmp_path / "my_lrjax_task.py").write_text(MY_TASK)
  monkeypatch.chdir(tmp_path)
  yield "my_lrjax_task"
  import sys
  sys.modules.pop("my_lrjax_task", None)


def test_the_population_program_trains_as_the_host_loop_does():
  """Every seed and peak in one program gives each run's numbers of ``unroll.train``: the same
  batches, keys and evaluation points (decisions on the held-out loss included)."""
  import optax
  import lrjax
  from lrjax.bench import unroll
  task = tiny_task(validate=False)
  on_held_out = lambda peak: optax.inject_hyperparams(optax.adam)(  # noqa: E731
      learning_rate=lrjax.reduce_on_plateau(peak, signal="observe", window=1, patience=0))
  for build, observe, peaks in ((on_held_out, True, [0.3, 3.0]),
                                (runner.builders(55)["wsd"], False, [1e-2, 3e-2])):
    peak_arr, seeds = runner._members(peaks, 2)
    out = unroll.population(task, build, 55, 10, observe_eval_loss=observe)(peak_arr, seeds)
    for m in (0, 3):  # (the first peak, seed 0) and (the second, seed 1)
      want = unroll.train(task, build(float(peak_arr[m])), 55, int(seeds[m]), 10,
                          observe_eval_loss=observe)
      assert want.steps.tolist() == [10, 20, 30, 40, 50, 55]
      for got, ref in ((out.train_loss, want.train_loss), (out.eval_loss, want.eval_loss),
                       (out.metric, want.metric), (out.lr, want.lr_every_step),
                       (out.initial_eval_loss, want.initial_eval_loss)):
        np.testing.assert_allclose(np.asarray(got[m]), ref, rtol=2e-5)
    assert np.all(np.isnan(np.asarray(out.val_loss)))  # a task without validate
    if observe:  # the held-out loss made a decision: the rate was cut in a run
      assert len(np.unique(np.asarray(out.lr)[3])) > 1


def test_one_compiled_program_per_schedule_whatever_the_seeds_and_peaks(tmp_path):
  from lrjax.bench import compare
  result = compare(tiny_task(), ["constant", "wsd", "learned"], peaks=[1e-3, 1e-2],
                   seeds=2, steps=30, eval_every=10, out=str(tmp_path))
  programs = result.summary["programs"]
  # the two pure schedules share one program; learned has its own
  assert programs["schedules"] == 3 and programs["compiled"] == programs["programs"] == 2
  assert programs["shared"] == ["constant", "wsd"]
  assert "2 compiled program(s) for 3 schedule(s)" in result.table()
  assert (tmp_path / "peak_sensitivity.png").read_bytes()[:4] == b"\x89PNG"


def test_each_schedule_is_reported_at_its_best_validation_peak():
  from lrjax.bench import compare
  peaks = [1e-3, 1e-2, 1e-1]
  result = compare("regression", ["constant", "learned", "learned_from_peak"], peaks=peaks,
                   seeds=2, steps=40, eval_every=20)
  s = result.summary
  runs = s["by_peak"]["constant"]
  assert [r["peak"] for r in runs] == peaks
  best = int(np.argmin([np.mean(r["val_finals"]) for r in runs]))
  row = s["schedules"]["constant"]
  assert row["peak"] == peaks[best]
  assert row["finals"] == runs[best]["finals"]  # the test split, at the chosen peak
  assert row["train_finals"] == runs[best]["train_finals"]
  # the validation and test splits differ
  assert row["val_finals"] != [c["eval_loss"][-1] for c in row["curves"]]
  # the learned controller takes no peak: one run per seed, no peak in the table
  assert len(s["by_peak"]["learned"]) == 1 and s["schedules"]["learned"]["peak"] is None
  # given the peak, it runs from each
  assert [r["peak"] for r in s["by_peak"]["learned_from_peak"]] == peaks
  assert "| — (own rate) |" in result.table()


def test_best_peak_never_picks_a_diverged_peak():
  nan = float("nan")
  rows = [{"val_finals": [0.5, 0.6], "diverged_seeds": 0},
          {"val_finals": [0.1, 0.2], "diverged_seeds": 1},   # lower, but a seed diverged
          {"val_finals": [0.4, nan], "diverged_seeds": 0},   # a NaN validation loss
          {"val_finals": [0.45, 0.5], "diverged_seeds": 0}]
  assert runner.best_peak(rows) == 3
  assert runner.best_peak([dict(r, diverged_seeds=1) for r in rows]) == 0


def test_your_own_task_through_the_cli(my_module, tmp_path, capsys):
  result = run_cli(capsys, "compare", "--task", f"{my_module}:make_task", "--schedules",
                   "constant,wsd", "--peaks", "0.1,0.01", "--seeds", "2", "--steps", "30",
                   "--eval-every", "10", "--out", str(tmp_path / "out"), "--quiet")
  assert result.returncode == 0, result.stderr
  assert "task linear: test MSE after 30 steps, 2 seed(s), each schedule at its best of 2 " \
      "peak lrs (0.01, 0.1) by final validation loss; no target" in result.stdout
  assert "| rank | schedule | peak |" in result.stdout
  summary = json.loads((tmp_path / "out" / "results.json").read_text())
  assert summary["peaks"] == [0.01, 0.1] and summary["target"] is None
  assert summary["schedules"]["wsd"]["steps_to_target"] == [None, None]


@pytest.mark.parametrize("args,message", [
    (["--task", "no_such_module_xyz:f"], "cannot import 'no_such_module_xyz'"),
    (["--task", "my_lrjax_task:missing"], "module 'my_lrjax_task' has no 'missing'"),
    (["--task", "my_lrjax_task:not_a_task"], "not_a_task gave a int, not an lrjax.bench.Task"),
    (["--task", "my_lrjax_task:no_validation", "--peaks", "0.1,0.2"],
     "task 'linear' has no validation split"),
    (["--peaks", "0.1,-1"], "argument --peaks: must be finite numbers > 0"),
    (["--peaks", "0.1,x"], "argument --peaks: must be numbers separated by commas"),
    (["--peaks", "0.1,0.1"], "argument --peaks: names a peak twice"),
    (["--peaks", "0.1,0.2", "--tune", "3"], "give --peaks or --tune, not both"),
    (["--tune", "0"], "argument --tune: must be a positive integer"),
])
def test_bad_task_and_peak_arguments_are_one_line(my_module, args, message, capsys):
  result = run_cli(capsys, "compare", "--quiet", "--steps", "10", "--seeds", "1",
                   "--schedules", "constant", "--eval-every", "5", *args)
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert message in result.stderr


@pytest.mark.parametrize("kwargs,message", [
    (dict(peaks=[0.0]), "peaks must be finite numbers > 0"),
    (dict(peaks=[]), "peaks must be finite numbers > 0"),
    (dict(peaks=[1e-2, 1e-2]), "names a peak twice"),
    (dict(seeds=0), "seeds must be a positive integer"),
    (dict(steps=2.5), "steps must be a positive integer"),
    (dict(signal="loss"), "signal must be one of"),
    (dict(rank_by="speed"), "rank_by must be one of"),
    (dict(schedules=["cosine"]), "unknown schedule 'cosine'"),
])
def test_compare_refuses_bad_arguments(kwargs, message):
  from lrjax.bench import compare
  with pytest.raises(ValueError, match=message):
    compare("regression", **{"schedules": ["constant"], **kwargs})


def test_a_population_too_big_for_memory_is_split_then_refused(monkeypatch):
  """While the program needs more than the free memory the batch of runs side by side is
  halved (and compiled again); one run that does not fit is a clear MemoryError."""
  task = tiny_task()
  build = runner.builders(5)["constant"]
  needs = iter([4000, 2000, 50])  # bytes needed by the batch-4, -2, -1 programs
  monkeypatch.setattr(runner, "_memory_needed", lambda compiled: next(needs))
  monkeypatch.setattr(runner, "_memory_available", lambda: 100)
  compiled, (peaks, seeds), batch = runner.compile_population(
      task, build, *runner._members([1e-2], 4), 5, 5, batch_size=4)
  assert batch == 1 and peaks.shape == (4,) and seeds.tolist() == [0, 1, 2, 3]
  monkeypatch.setattr(runner, "_memory_needed", lambda compiled: 10 * 2**30)
  with pytest.raises(MemoryError, match="one run of task 'linear' needs 10.00 GiB"):
    runner.compile_population(task, build, *runner._members([1e-2], 2), 5, 5, batch_size=1)


def test_runs_side_by_side_equal_runs_one_after_another():
  """The accelerator's way (a batch of runs under vmap) gives the CPU's way's numbers."""
  from lrjax.bench import unroll
  build = runner.builders(20)["wsd"]
  peaks, seeds = runner._members([1e-2, 1e-1], 2)
  one = unroll.population(tiny_task(), build, 20, 10, batch_size=1)(peaks, seeds)
  two = unroll.population(tiny_task(), build, 20, 10, batch_size=2)(peaks, seeds)
  for a, b in zip(one, two):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5)
  assert one.loss.shape == (4, 20) and one.eval_loss.shape == (4, 2)


def test_the_shared_program_trains_each_pure_schedule_as_its_own_program():
  """One program for the pure schedules (the rate chosen by lax.switch) gives each schedule's
  runs of its own program."""
  from lrjax.bench import unroll
  task, names = tiny_task(), ["constant", "wsd", "optax.warmup_cosine_decay_schedule"]
  table, pure = runner.builders(20), runner.pure_schedules(20)
  index = np.array([0, 1, 2, 1], np.int32)
  peaks = np.array([1e-2, 1e-2, 1e-1, 1e-1], np.float32)
  seeds = np.array([0, 1, 1, 0], np.int32)
  shared = unroll.population(task, runner.shared_builder([pure[n] for n in names]), 20, 10)(
      (index, peaks), seeds)
  for m in range(4):
    alone = unroll.population(task, table[names[index[m]]], 20, 10)(peaks[m:m + 1],
                                                                    seeds[m:m + 1])
    for a, b in zip(shared, alone):
      np.testing.assert_allclose(np.asarray(a)[m], np.asarray(b)[0], rtol=1e-5)
