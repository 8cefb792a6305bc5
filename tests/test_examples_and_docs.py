"""Smoke tests: every example runs; the README's commands are the ones CI runs."""

import pathlib
import re
import runpy
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
SMOKE_ARGS = {"schedule_sweep.py": ["--steps", "40"], "seed_cnn.py": ["--steps", "60"],
              "optax_chain.py": ["--steps", "30"], "flax_nnx.py": ["--steps", "20"],
              "multi_device.py": ["--steps", "20"], "checkpoint_resume.py": ["--steps", "50"],
              "lr_finder.py": ["--steps", "30"], "seed_keras_cnn.py": ["--epochs", "2"],
              "multi_host.py": ["--num-processes", "2", "--steps", "60"],
              "learned_controller.py": ["--steps", "100"], "plan_schedule.py": ["--steps", "300"],
              "compare_your_model.py": ["--steps", "40", "--seeds", "1", "--peaks", "1e-2,1e-1",
                                        "--schedules", "wsd,learned"]}


OPTIMIZED = {"seed_cnn.py", "seed_keras_cnn.py"}  # CNNs: compiled with LLVM's passes on
PARAMS = [pytest.param(p, marks=[pytest.mark.optimized] if p.name in OPTIMIZED else [])
          for p in EXAMPLES]


@pytest.mark.parametrize("path", PARAMS, ids=[p.name for p in EXAMPLES])
def test_example_runs(path, monkeypatch, capsys):
  if path.name == "seed_keras_cnn.py":
    pytest.importorskip("keras")  # the optional lrjax[keras] extra (the test extra installs it)
  monkeypatch.setattr(sys, "argv", [str(path), *SMOKE_ARGS.get(path.name, [])])
  runpy.run_path(str(path), run_name="__main__")
  assert capsys.readouterr().out.strip()


def _readme_commands():
  text = (ROOT / "README.md").read_text()
  return re.findall(r"```bash\n(.+?)\n```", text)


def test_readme_opens_with_two_commands_and_ci_runs_the_test_one():
  commands = _readme_commands()
  assert len(commands) >= 2
  main_job, tests = commands[0], commands[1]
  assert "lrjax compare" in main_job and "pip install" in main_job
  assert "pytest" in tests and "pip install" in tests
  ci = (ROOT / ".ci" / "run").read_text()
  assert tests in ci


def test_readme_lists_every_schedule():
  import lrjax
  text = (ROOT / "README.md").read_text()
  for name in lrjax.schedule_names():
    if name != "function":
      assert f"`{name}(" in text or f"{name}(" in text, name
