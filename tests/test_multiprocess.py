"""Two processes x 4 CPU devices on JAX's distributed runtime (gloo), as a multi-host job runs.

For every stateful schedule, LR-owning transform, scheduled weight decay and averaging
transform (``multiprocess_worker.cases``), with ``jit`` + ``NamedSharding`` and with
``shard_map`` + ``axis_name``, each process feeding its own rows of every global batch: both
processes hold the same state, equal to one process fed the same global batches, and an orbax
checkpoint written by both half-way and restored by both continues bit-identically.
"""

import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

import multiprocess_worker as worker

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT_S = 300
NAMES = sorted(worker.cases())
MODES = ("jit", "shard_map")


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
  if not sys.platform.startswith("linux"):
    pytest.skip("the gloo CPU collectives run on Linux")
  out = tmp_path_factory.mktemp("multiprocess")
  port = _free_port()
  env = dict(os.environ)  # the worker replaces the device count in XLA_FLAGS with its own 4
  procs = [subprocess.Popen([sys.executable, os.path.join(HERE, "multiprocess_worker.py"),
                             str(pid), "2", str(port), str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for pid in range(2)]
  logs = []
  try:
    for p in procs:
      logs.append(p.communicate(timeout=TIMEOUT_S)[0])
  except subprocess.TimeoutExpired:
    pytest.fail(f"the two processes did not finish within {TIMEOUT_S} s")
  finally:
    for p in procs:  # every child reaped, on failure too
      if p.poll() is None:
        p.kill()
      p.wait()
  for p, log in zip(procs, logs):
    tail = "\n".join(line for line in log.splitlines() if "[Gloo]" not in line)[-3000:]
    assert p.returncode == 0, f"a process failed (exit {p.returncode}):\n{tail}"
  return out


def _load(path):
  with np.load(path) as f:
    arrays = [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]
  half = len(arrays) // 2
  return arrays[:half], arrays[half:]


@pytest.fixture(scope="module")
def one_process():
  """{mode: {case: leaves}} on this process's 8 devices, the reference (one program a mode);
  None with fewer devices."""
  if jax.device_count() < 8:
    return None
  return {mode: worker.run_straight(NAMES, mode) for mode in MODES}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", NAMES)
def test_processes_agree_resume_and_equal_one_process(two_processes, one_process, name, mode):
  straight0, resumed0 = _load(two_processes / f"{name}_{mode}_0.npz")
  straight1, resumed1 = _load(two_processes / f"{name}_{mode}_1.npz")
  for a, b in zip(straight0, straight1):
    np.testing.assert_array_equal(a, b)  # every process reads the same state
  for a, b in zip(straight0, resumed0):
    np.testing.assert_array_equal(a, b)  # restored by both, continued bit-identically
  for a, b in zip(straight1, resumed1):
    np.testing.assert_array_equal(a, b)
  if one_process is None:
    pytest.skip("the one-process reference needs 8 devices")
  reference = one_process[mode][name]
  # Sums split over 8 devices round differently from one device's: a statistic that is a
  # difference of such sums (the learned controller's cosine of successive gradients, 0.1 here
  # from terms of order 1) differs by a few float32 ulps of its terms, ~1e-6.
  for a, b in zip(straight0, reference):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=3e-6)
