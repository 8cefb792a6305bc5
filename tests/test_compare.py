"""``lrjax compare``: a small run end to end, every named optimizer builds, bad input."""

import json
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import optax
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("flax")

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
  assert "| schedule |" in out and "wsd" in out and "constant" in out
  summary = json.loads((tmp_path / "results.json").read_text())
  assert set(summary["schedules"]) == {"constant", "wsd"}
  curves = summary["schedules"]["wsd"]["curves"]
  assert len(curves) == 2 and curves[0]["steps"] == [20, 40]
  rows = (tmp_path / "results.csv").read_text().splitlines()
  assert rows[0].startswith("schedule,seed,step") and len(rows) == 1 + 2 * 2 * 2
  for png in ("loss_curves.png", "metric_curves.png", "lr_curves.png"):
    assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_steps_to_target():
  from lrjax.bench.unroll import TrainResult
  r = TrainResult(np.array([10, 20, 30]), np.zeros(3), np.zeros(3), np.array([0.5, 0.9, 0.95]),
                  np.zeros(3), 0.0)
  assert runner.steps_to_target(r, 0.9, True) == 20
  assert runner.steps_to_target(r, 0.99, True) is None
  assert runner.steps_to_target(r, 0.6, False) == 10


@pytest.mark.parametrize("args,message", [
    (["--task", "mnist"], "unknown task 'mnist'"),
    (["--schedules", "cosine"], "unknown schedule 'cosine'"),
    (["--steps", "0"], "must be a positive integer"),
    (["--peak-lr", "-1"], "argument --peak-lr: must be a finite number > 0, got '-1'"),
    (["--peak-lr", "inf"], "argument --peak-lr: must be a finite number > 0, got 'inf'"),
    (["--peak-lr", "nan"], "argument --peak-lr: must be a finite number > 0, got 'nan'"),
    (["--peak-lr", "abc"], "argument --peak-lr: must be a number, got 'abc'"),
    (["--out", "/proc/no/such"], "cannot write to --out"),
])
def test_bad_input_is_one_line(args, message):
  result = subprocess.run([sys.executable, "-m", "lrjax", "compare", "--quiet", *args],
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert message in result.stderr


def test_the_schedule_list_comes_from_the_one_registry():
  import lrjax
  from lrjax.schedules._base import preset_names
  assert set(preset_names()) == set(lrjax.schedule_names()) - {"function"}
  assert set(preset_names()) <= set(runner.optimizers(100, 1e-3))
