"""The learning-rate range test on the digits CNN, compiled into one scan, with its plot.

  python examples/lr_finder.py [--steps 100] [--plot lr_finder.png]
"""

import argparse

import jax
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
  print(f"stopped at step {result.stopped_at}; suggestions: " +
        ", ".join(f"{k} {v:.2e}" for k, v in result.suggestions.items()))
  if args.plot:
    result.plot(args.plot)
    print(f"wrote {args.plot}")


if __name__ == "__main__":
  main()
