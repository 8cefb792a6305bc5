"""The learning-rate range test on the digits CNN, compiled into one scan, with its plot.

  python examples/lr_finder.py [--steps 100] [--plot lr_finder.png]
"""

import argparse

import jax
import numpy as np
import optax

import lrjax
from lrjax.bench import tasks


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=100)
  parser.add_argument("--plot", default=None, help="write the curve to this PNG")
  args = parser.parse_args(argv)
  task = tasks.get_task("digits")
  params = task.init(jax.random.PRNGKey(0))
  keys = jax.random.split(jax.random.PRNGKey(1), args.steps)
  batches = jax.vmap(task.sample)(keys)  # stacked: the sweep is one lax.scan
  result = lrjax.find_lr(task.loss_fn, params, batches, optimizer=optax.adamw, min_lr=1e-5,
                         max_lr=1.0, num_steps=args.steps)
  smoothed = result.smoothed_losses
  best = int(np.nanargmin(smoothed))
  if result.stopped_at is None:
    print(f"ran all {args.steps} steps up to lr {result.lrs[-1]:.2e}: the smoothed loss fell to "
          f"{smoothed[best]:.3f} at lr {result.lrs[best]:.2e} and ended at {smoothed[-1]:.3f}, "
          "never above 4x its best (the divergence stop)")
  else:
    print(f"stopped at step {result.stopped_at} (lr {result.lrs[result.stopped_at]:.2e}): the "
          f"smoothed loss passed 4x its best {smoothed[best]:.3f} (at lr "
          f"{result.lrs[best]:.2e})")
  names = {"steepest": "steepest descent", "minimum": "minimum / 10", "valley": "valley (default)"}
  print("suggestions: " + ", ".join(f"{names[k]} {v:.2e}" for k, v in result.suggestions.items()))
  if args.plot:
    result.plot(args.plot)
    print(f"wrote {args.plot}")


if __name__ == "__main__":
  main()
