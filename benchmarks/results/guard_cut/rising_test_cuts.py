"""The guard test of a rising schedule (``tests/test_guard.py``) run on the learned controller at
several ``guard_cut`` values: the final loss over tuned's per (seed, start at tuned/10 and at
tuned x10), and the spikes caught. From the repository root::

    python benchmarks/results/guard_cut/rising_test_cuts.py
"""

import sys

import jax.numpy as jnp
import numpy as np
import optax

import lrjax

sys.path.insert(0, "tests")
import test_guard as T  # noqa: E402

shape = optax.warmup_cosine_decay_schedule(0.0, 1.0, T._STEPS // 10, T._STEPS)
peaks = np.asarray([10 ** (k / 2) for k in range(-8, 1)], np.float32)
finals = T._final_losses(lambda p: optax.sgd(lambda c: p * shape(c)))(jnp.arange(3), peaks)
best = int(np.argmin(np.mean(np.log(np.where(np.isfinite(finals), finals, 1e30)), 0)))
peak, tuned = float(peaks[best]), float(np.mean(finals[:, best]))
starts = jnp.asarray([peak / 10, peak * 10], jnp.float32)
for cut in [0.1, 0.2, 0.3, 0.5]:
  f, sp = T._final_losses(lambda lr: lrjax.learned_controller(
      T._sgd, init_value=lr, total_steps=T._STEPS, guard_cut=cut), spikes=True)(
          jnp.arange(3), starts)
  print(f"guard_cut {cut}: ratio to tuned {np.round(f / tuned, 2).tolist()}, "
        f"spikes {sp.tolist()}")
