"""The mission's example end to end: a small CNN on images with a stateful schedule.

Trains the `digits` CNN (conv/pool blocks then dense, on scikit-learn's bundled 8x8 handwritten
digits) with AdamW under warmup-then-reduce-on-plateau, the whole chunk of steps compiled, and logs
the learning rate read from the optimizer state with `lrjax.current_lr` at every evaluation.

  python examples/seed_cnn.py [--steps 600]
"""

import argparse

import optax

import lrjax
from lrjax.bench import tasks, unroll


WARMUP = 50


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=600)
  args = parser.parse_args(argv)
  task = tasks.get_task("digits")
  schedule = lrjax.reduce_on_plateau(lrjax.warmup(lrjax.constant(3e-3), WARMUP), factor=0.5,
                                     patience=3, window=20)
  tx = optax.inject_hyperparams(optax.adamw)(learning_rate=schedule, weight_decay=1e-4)

  def log(step, row):
    print(f"step {step:4d}  train loss {row['train_loss']:.4f}  test accuracy "
          f"{row['metric']:.4f}  lr {row['lrs']:.2e}")

  result = unroll.train(task, tx, args.steps, seed=0, eval_every=max(args.steps // 6, 1),
                       on_eval=log)
  lrs = result.lr_every_step  # the rate after every update
  for t in range(WARMUP + 1, len(lrs)):
    if lrs[t] != lrs[t - 1]:
      print(f"reduce_on_plateau: lr {lrs[t - 1]:.2e} -> {lrs[t]:.2e} from update {t + 1} on")
  print(f"final test accuracy {result.metric[-1]:.4f} in {result.wall_time:.1f} s")


if __name__ == "__main__":
  main()
