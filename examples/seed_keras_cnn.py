"""The example lrjax grew from: a small Keras CNN on 10x10 images, with and without lrjax.

A Keras 3 ``Sequential`` CNN (Conv2D / MaxPooling2D / Dense, ``input_shape=(10, 10, 1)``)
trained on scikit-learn's handwritten digits, upsampled from 8x8 to 10x10: once at a
constant learning rate, once with an lrjax schedule -- a per-step warmup under
``reduce_on_plateau`` deciding on ``val_loss`` at every epoch's end
(``lrjax.keras.PlateauCallback``). Prints the decisions and both test accuracies.

  pip install 'lrjax[keras,tasks]'
  python examples/seed_keras_cnn.py [--epochs 30]
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import lrjax  # noqa: E402
import lrjax.keras  # noqa: E402,F401


def data():
  digits = load_digits()
  images = jnp.asarray(digits.images / 16.0, jnp.float32)[..., None]           # (n, 8, 8, 1)
  images = np.asarray(jax.image.resize(images, (len(images), 10, 10, 1), "bilinear"))
  perm = np.random.default_rng(0).permutation(len(images))
  x, y = images[perm], digits.target[perm].astype("int32")
  a, b = int(0.6 * len(x)), int(0.8 * len(x))
  return (x[:a], y[:a]), (x[a:b], y[a:b]), (x[b:], y[b:])


def cnn():
  return keras.Sequential([
      keras.Input(shape=(10, 10, 1)),
      keras.layers.Conv2D(16, 3, activation="relu"),                  # 8x8x16
      keras.layers.MaxPooling2D(2),                                   # 4x4x16
      keras.layers.Conv2D(32, 3, padding="same", activation="relu"),  # 4x4x32
      keras.layers.MaxPooling2D(2),                                   # 2x2x32
      keras.layers.Flatten(),
      keras.layers.Dense(64, activation="relu"),
      keras.layers.Dense(10, activation="softmax"),
  ])


def train(learning_rate, epochs, callbacks=()):
  keras.utils.set_random_seed(0)
  (x, y), val, (xt, yt) = data()
  model = cnn()
  model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                loss="sparse_categorical_crossentropy", metrics=["accuracy"])
  model.fit(x, y, validation_data=val, epochs=epochs, batch_size=32, verbose=0,
            callbacks=list(callbacks))
  return model.evaluate(xt, yt, verbose=0)[1]


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--epochs", type=int, default=30)
  args = parser.parse_args(argv)
  with jax.numpy_rank_promotion("allow"):  # Keras layers broadcast biases by rank promotion
    constant = train(3e-3, args.epochs)
    steps_per_epoch = -(-len(data()[0][0]) // 32)
    plateau = lrjax.keras.PlateauCallback(
        lrjax.reduce_on_plateau(lrjax.warmup(3e-3, 2 * steps_per_epoch), factor=0.5,
                                patience=2, signal="observe"),
        monitor="val_loss", verbose=1)
    scheduled = train(plateau.learning_rate, args.epochs, [plateau])
  print(f"test accuracy, Adam at a constant 3e-3:                       {constant:.4f}")
  print(f"test accuracy, warmup + reduce_on_plateau(val_loss) by lrjax: {scheduled:.4f}")


if __name__ == "__main__":
  main()
