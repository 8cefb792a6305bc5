"""ES from the shipped weights, K draws per iteration (the members' losses averaged over them)."""
import sys, time
import numpy as np, jax, jax.numpy as jnp, optax
from lrjax import meta
seed, lr, iters, k, out = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
every = int(sys.argv[6]) if len(sys.argv) > 6 else 25
structures = tuple(meta.FAMILY) + ("deep",)
family = {n: meta.STRUCTURES[n] for n in structures}
validation = meta.validation_draws(48, structures=structures)
w0 = meta.load_weights()
flat = meta._Flat(w0)
adam = optax.adam(lr)
state = meta.es_init(flat.flat(w0), adam)
get = meta._compiled_population(family, flat, warmup_divisor=20)
t0 = time.time()
def validate(state):
  loss = float(np.mean(meta.evaluate(flat.unflat(jnp.asarray(state.theta)), validation, family, warmup_divisor=20)))
  state = meta.es_validated(state, loss)
  print(f"iteration {int(state.iteration)}: validation {loss:.4f}{' (best)' if int(state.best_iteration) == int(state.iteration) else ''} ({time.time()-t0:.0f}s)", flush=True)
  return state
state = validate(state)
pairs, sigma = 8, 0.02
for i in range(iters):
  eps = np.asarray(jax.random.normal(jax.random.PRNGKey(seed * 1_000_003 + i), (pairs, state.theta.size)))
  pop = jnp.asarray(meta.es_population(state, eps, sigma), jnp.float32)
  total = 0.0
  for j in range(k):
    d = meta.draw(np.random.default_rng([seed, 2, i, j]), structures, meta.HORIZONS)
    total = total + meta._centered_ranks(np.asarray(get(d)(pop, jax.random.PRNGKey(d.seed), d.horizon, d.horizon_known, d.init_value)))
  state = meta.es_update(state, eps, total / k, sigma, adam)
  if (i + 1) % every == 0:
    state = validate(state)
best = {kk: np.asarray(v) for kk, v in flat.unflat(jnp.asarray(state.best_theta)).items()}
meta.save_weights(out, best, seed=seed, iterations=iters, learning_rate=lr, best_iteration=int(state.best_iteration), note=f"ES from the shipped weights, {k} draws an iteration")
print("best", int(state.best_iteration), flush=True)
