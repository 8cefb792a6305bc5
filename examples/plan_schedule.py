"""Fit a loss-curve law to three short runs, plan the schedule for a longer one, and check it.

A small MLP learns a random teacher from noisy minibatches with AdamW. Three short runs (a third of
the budget: warmup-cosine, constant, two-stage) are written as `lrjax.plan` CSV curves and read
back, the multi-power law is fitted to them, `plan.optimize` plans the full budget, and the plan is
trained beside warmup-cosine and WSD at the same peak. Every run of one length is one compiled
program (the rate of every update is an argument; seeds and schedules are vmapped).

  python examples/plan_schedule.py [--steps 1500] [--peak 3e-3] [--out FOLDER]
"""

import argparse
import os
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrjax
from lrjax import plan

SEEDS = 3


def batch(key, teacher, size=64):
  x = jax.random.normal(key, (size, 16))
  y = jnp.tanh(x @ teacher[0]) @ teacher[1]
  return x, y + 0.05 * jax.random.normal(jax.random.fold_in(key, 1), y.shape)


def loss_fn(params, x, y):
  h = jax.nn.gelu(x @ params["w1"] + params["b1"][None, :])
  return jnp.mean((h @ params["w2"] - y) ** 2)


@jax.jit
def train(lrs, seed):
  """Per-update training losses of one run: update t uses rate lrs[t]."""
  key = jax.random.PRNGKey(seed)
  teacher = (jax.random.normal(jax.random.PRNGKey(100), (16, 32)) / 4,
             jax.random.normal(jax.random.PRNGKey(101), (32, 1)) / 6)
  k1, k2, data = jax.random.split(key, 3)
  params = {"w1": jax.random.normal(k1, (16, 64)) / 4, "b1": jnp.zeros(64),
            "w2": jax.random.normal(k2, (64, 1)) / 8}
  tx = optax.adamw(lambda count: lrs[jnp.minimum(count, lrs.shape[0] - 1)])

  def step(carry, key):
    params, state = carry
    loss, grads = jax.value_and_grad(loss_fn)(params, *batch(key, teacher))
    updates, state = tx.update(grads, state, params)
    return (optax.apply_updates(params, updates), state), loss

  _, losses = jax.lax.scan(step, (params, tx.init(params)), jax.random.split(data, lrs.shape[0]))
  return losses


train_many = jax.jit(jax.vmap(jax.vmap(train, in_axes=(None, 0)), in_axes=(0, None)))
# A schedule is a pytree: one jitted function evaluates any of them (op by op, each schedule's
# arithmetic would compile a small program per operation).
rates = jax.jit(lambda schedule, steps: schedule(steps))


def run(schedules, length):
  """{name: (rates, seed-mean loss)} for every schedule, all in one program."""
  steps = jnp.arange(length)
  lrs = np.stack([np.asarray(rates(s, steps), np.float64) for s in schedules.values()])
  losses = np.asarray(train_many(jnp.asarray(lrs, jnp.float32), jnp.arange(SEEDS)))
  return {name: (lrs[i], losses[i]) for i, name in enumerate(schedules)}


def logged(losses, start, window=10):
  """The seed-mean loss over windows of ``window`` updates, logged at each window's middle."""
  mean = losses.mean(axis=0)
  ends = np.arange(start + window, mean.size + 1, window)
  return ends - window // 2 - 1, np.array([mean[e - window:e].mean() for e in ends])


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=1500)
  parser.add_argument("--peak", type=float, default=3e-3)
  parser.add_argument("--out", default=None,
                      help="where the short runs' CSV curves go (default: a temporary folder)")
  args = parser.parse_args()
  total, peak = args.steps, args.peak
  short, warm = total // 3, total // 20
  out = args.out or tempfile.mkdtemp(prefix="lrjax-plan-")
  os.makedirs(out, exist_ok=True)

  warmup = lrjax.linear(0.0, peak, warm)
  shorts = {"cosine": lrjax.warmup_cosine_decay(0.0, peak, warm, short),
            "constant": lrjax.join([warmup, lrjax.constant(peak)], [warm]),
            "two-stage": lrjax.join([warmup, lrjax.constant(peak), lrjax.constant(peak / 3)],
                                    [warm, short * 2 // 3])}
  paths = []
  for name, (_, losses) in run(shorts, short).items():
    steps, values = logged(losses, start=short // 4)   # past the early transient
    paths.append(os.path.join(out, f"{name}.csv"))
    plan.write_csv(paths[-1], shorts[name], steps, values)
  curves = [plan.read_csv(p) for p in paths]
  law = plan.fit(curves)
  print(f"fitted to {len(curves)} runs of {short} updates: "
        + ", ".join(f"{k}={v:.3g}" for k, v in law.params.items()))
  for row in plan.evaluate(law, curves):
    print(f"  {row['name']:<10} mean relative error of the fit {row['mean_rel_error']:.4f}")

  cooldown = total // 5
  full = {"planned": plan.optimize(law, total, peak, warm),
          "warmup-cosine": lrjax.warmup_cosine_decay(0.0, peak, warm, total),
          "wsd": lrjax.wsd(peak, warm, total - warm - cooldown, cooldown)}
  predicted = plan.compare(law, full, total)
  print(f"\ntrained for {total} updates ({SEEDS} seeds), final training loss (mean of the last "
        "10 updates) against the law's prediction:")
  finals = {name: losses[:, -10:].mean(axis=1) for name, (_, losses) in run(full, total).items()}
  for name, final in finals.items():
    print(f"  {name:<14} {final.mean():.5f} ± {final.std():.5f}   predicted {predicted[name]:.5f}")
  best = min(("warmup-cosine", "wsd"), key=lambda n: finals[n].mean())
  diff = finals["planned"] - finals[best]
  noise = 2 * diff.std(ddof=1) / np.sqrt(diff.size)
  verdict = ("a tie within noise" if abs(diff.mean()) <= noise
             else "the plan is lower" if diff.mean() < 0 else f"{best} is lower")
  print(f"planned - {best}: {diff.mean():+.5f} (paired over seeds; 2 standard errors "
        f"{noise:.5f}): {verdict}")
  print(f"\nwrote {', '.join(paths)} (lrjax plan fit {' '.join(paths)} does the same fit)")


if __name__ == "__main__":
  main()
