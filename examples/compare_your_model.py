"""Your own model in `lrjax compare`: a flax.nnx MLP on scikit-learn's digits, as a Task.

A `Task` is five pure functions: `init(key)`, `sample(key)`, `loss_fn(params, batch)`,
`evaluate(params)` (the test split) and `validate(params)` (a validation split, on which
each schedule's best peak is chosen). Wrap your model and data like `make_task` below, then

  python examples/compare_your_model.py [--steps 300] [--seeds 3] [--peaks 1e-3,1e-2,1e-1]
      [--schedules constant,wsd,...]

or, from this folder, the command line on the same function:

  lrjax compare --task compare_your_model:make_task --peaks 1e-3,1e-2,1e-1
"""

import argparse

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from sklearn import datasets

from lrjax.bench import Task, compare
from lrjax.bench.tasks import split


class MLP(nnx.Module):
  def __init__(self, features, classes, rngs):
    self.hidden = nnx.Linear(features, 64, rngs=rngs)
    self.out = nnx.Linear(64, classes, rngs=rngs)

  def __call__(self, x):
    return self.out(jax.nn.relu(self.hidden(x)))


def make_task(batch=32):
  """The digits MLP as an `lrjax.bench.Task` (80% train, 10% validation, 10% test)."""
  data = datasets.load_digits()
  train, val, test = split(len(data.data))
  x, y = jnp.asarray(data.data / 16.0, jnp.float32), jnp.asarray(data.target, jnp.int32)
  build = lambda key: MLP(x.shape[1], 10, nnx.Rngs(key))  # noqa: E731
  graphdef, _ = nnx.split(nnx.eval_shape(lambda: build(jax.random.PRNGKey(0))), nnx.Param)

  def cross_entropy(params, idx):
    logits = nnx.merge(graphdef, params)(x[idx])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y[idx]).mean()
    return loss, jnp.mean(jnp.argmax(logits, -1) == y[idx])

  def evaluate(params):
    loss, accuracy = cross_entropy(params, test)
    return {"loss": loss, "metric": accuracy}

  return Task(
      "digits-mlp", "test accuracy", higher_is_better=True, target=0.95,
      init=lambda key: nnx.split(build(key), nnx.Param)[1],
      sample=lambda key: jax.random.choice(key, jnp.asarray(train), (batch,)),
      loss_fn=lambda params, idx: cross_entropy(params, idx)[0],
      evaluate=evaluate,
      validate=lambda params: {"loss": cross_entropy(params, val)[0]})


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--peaks", default="1e-3,1e-2,1e-1")
  parser.add_argument("--schedules",
                      default="constant,warmup_cosine_decay,wsd,reduce_on_plateau,learned")
  parser.add_argument("--out", default=None, help="a folder for the files and plots")
  args = parser.parse_args(argv)
  report = compare(make_task(), args.schedules.split(","),
                   peaks=[float(p) for p in args.peaks.split(",")], seeds=args.seeds,
                   steps=args.steps, eval_every=max(args.steps // 10, 1), out=args.out)
  print(report)


if __name__ == "__main__":
  main()
