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
    (["--schedules", "wsd,wsd"], "--schedules names a schedule twice"),
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
