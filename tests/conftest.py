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
