import os
import sys

# 8 CPU devices for the multi-device tests; must be set before JAX starts.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()

import hypothesis  # noqa: E402
import jax  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))

jax.config.update("jax_numpy_rank_promotion", "raise")

hypothesis.settings.register_profile("lrjax", max_examples=60, deadline=None,
                                    derandomize=True)
hypothesis.settings.load_profile("lrjax")


def assert_same_run(a, b):
  """Two runs of the same program on the same inputs: bitwise equal where the backend is
  deterministic (the CPU; a GPU with XLA_FLAGS=--xla_gpu_deterministic_ops=true), else equal
  to float32 rounding (GPU reductions may add in another order: 4e-6 seen on an H200)."""
  import chex
  deterministic = (jax.default_backend() == "cpu" or
                   "--xla_gpu_deterministic_ops=true" in os.environ.get("XLA_FLAGS", ""))
  if deterministic:
    chex.assert_trees_all_equal(a, b)
  else:
    chex.assert_trees_all_close(a, b, rtol=1e-5, atol=1e-7)
