"""The ``lrjax`` command line and plotting."""

import json
import subprocess
import sys

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import lrjax
from conftest import run_cli
from lrjax import cli


def run(*args):
  """The real command, ``python -m lrjax ARGS``, in its own process (the one smoke test)."""
  return subprocess.run([sys.executable, "-m", "lrjax", *args], capture_output=True,
                        text=True, timeout=120)


def test_parse_spec_values_are_json():
  label, config = cli.parse_spec("multistep_decay:init_value=0.1,milestones=[30, 60],gamma=0.5")
  assert label.startswith("multistep_decay")
  assert config == {"name": "multistep_decay", "init_value": 0.1, "milestones": [30, 60],
                    "gamma": 0.5}
  _, config = cli.parse_spec("cyclic:base_value=1e-4,max_value=1e-2,step_size_up=100,mode=triangular2")
  assert config["mode"] == "triangular2" and config["base_value"] == 1e-4


def test_plot_writes_a_png(tmp_path):
  out = tmp_path / "s.png"
  spec_file = tmp_path / "joined.json"
  spec_file.write_text(json.dumps(lrjax.join([lrjax.linear(0.0, 1e-3, 50),
                                              lrjax.cosine_decay(1e-3, 250)], [50]).to_config()))
  code = cli.main(["plot", "wsd:peak_value=1e-3,warmup_steps=30,stable_steps=200,decay_steps=70",
                   "one_cycle:peak_value=1e-3,total_steps=300", str(spec_file),
                   "--steps", "300", "-o", str(out)])
  assert code == 0
  data = out.read_bytes()
  assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


@pytest.mark.parametrize("args,message", [
    (["plot", "cosine:init_value=1"], "unknown schedule name 'cosine'"),
    (["plot", "cosine_decay:init_value=1,decay_steps=0"], "lrjax.cosine_decay: decay_steps must be > 0"),
    (["plot", "cosine_decay:init_value=1,decay_step=10"], "lrjax.cosine_decay:"),
    (["plot", "cosine_decay:init_value"], "is not key=value"),
    (["plot", "cosine_decay:init_value=1,decay_steps=10", "-o", "/nonexistent/dir/x.png"],
     "does not exist"),
    (["plot", "missing.json"], "cannot read schedule file 'missing.json'"),
    (["plot", "cosine_decay:init_value=1,decay_steps=10", "--steps", "0"],
     "must be a positive integer"),
    (["plot", "cosine_decay:init_value=1,decay_steps=10", "--steps", "ten"],
     "must be a positive integer"),
    ([], "a command is required"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path, capsys):
  result = run_cli(capsys, *args)
  assert result.returncode == 2, result
  assert "Traceback" not in result.stderr
  assert message in result.stderr, result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith(("lrjax: error:", "lrjax plot: error:"))


def test_bad_json_file_is_one_line(tmp_path, capsys):
  bad = tmp_path / "bad.json"
  bad.write_text("{not json")
  result = run_cli(capsys, "plot", str(bad))
  assert result.returncode == 2 and "is not valid JSON" in result.stderr
  assert "Traceback" not in result.stderr


def test_list_and_version(capsys):
  result = run("list")  # the one real `python -m lrjax` subprocess
  assert result.returncode == 0
  names = result.stdout.split()
  assert "wsd" in names and "one_cycle" in names and "function" not in names
  # Everything compare accepts is listed, under a kind heading.
  from lrjax.bench import runner
  lines = result.stdout.splitlines()
  assert set(runner.optimizers(100, 1e-3)) <= set(lines)
  assert lines.index("# stateful schedules (lrjax compare, lrjax.create)") < lines.index("greedy")
  result = run_cli(capsys, "--version")
  assert result.returncode == 0 and result.stdout.strip() == f"lrjax {lrjax.__version__}"


def test_plot_schedules_on_given_axes_and_log_scale(tmp_path):
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots()
  out = lrjax.plot_schedules({"a": lrjax.exponential_decay(1.0, 10, 0.5),
                              "b": lrjax.constant(0.3)}, 50, ax=ax, log_scale=True)
  assert out is ax and ax.get_yscale() == "log"
  assert [l.get_label() for l in ax.get_lines()] == ["a", "b"]
  np.testing.assert_allclose(ax.get_lines()[0].get_ydata()[[0, 10, 20]], [1.0, 0.5, 0.25],
                             rtol=1e-6)
  plt.close(fig)


def test_plot_schedules_bad_steps():
  with pytest.raises(ValueError, match="lrjax.plot_schedules: steps must be a positive int"):
    lrjax.plot_schedules({"a": lrjax.constant(1.0)}, 0)


def test_plot_without_matplotlib_names_the_extra(monkeypatch):
  import builtins
  real_import = builtins.__import__

  def fake_import(name, *args, **kwargs):
    if name == "matplotlib" or name.startswith("matplotlib."):
      raise ImportError("no matplotlib")
    return real_import(name, *args, **kwargs)

  monkeypatch.setattr(builtins, "__import__", fake_import)
  with pytest.raises(ImportError, match=r"pip install 'lrjax\[plot\]'"):
    lrjax.plot_schedules({"a": lrjax.constant(1.0)}, 10)


def test_plot_refuses_a_stateful_schedule_in_one_line(tmp_path, capsys):
  code = cli.main(["plot", "reduce_on_plateau:base=0.1", "-o", str(tmp_path / "x.png")])
  assert code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err == ["lrjax: error: 'reduce_on_plateau' is a stateful schedule: its learning rate "
                 "follows the training signal, so it has no curve to plot (try it in lrjax "
                 "compare)"]
