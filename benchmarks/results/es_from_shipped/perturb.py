"""The validation meta-loss of the shipped weights and of copies perturbed by N(0, s^2) noise."""
import sys, time
import numpy as np, jax.numpy as jnp
from lrjax import meta
scale = float(sys.argv[1]); seeds = [int(x) for x in sys.argv[2].split(",")]
structures = tuple(meta.FAMILY) + ("deep",)
family = {n: meta.STRUCTURES[n] for n in structures}
validation = meta.validation_draws(48, structures=structures)
w0 = meta.load_weights(); flat = meta._Flat(w0); theta = np.asarray(flat.flat(w0))
t0 = time.time()
for s in seeds:
  th = theta + (scale * np.random.default_rng(s).normal(size=theta.shape) if s >= 0 else 0.0)
  per = np.asarray(meta.evaluate(flat.unflat(jnp.asarray(th, jnp.float32)), validation, family, warmup_divisor=20))
  print(f"noise {scale if s >= 0 else 0} seed {s}: validation {per.mean():.4f}  per-draw {np.array2string(per, precision=2, max_line_width=400)} ({time.time()-t0:.0f}s)", flush=True)
