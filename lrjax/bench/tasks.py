"""Real training tasks for comparing schedules, from data every installation has.

Each task is data, a model, a training loss, a batch sampler (in graph), a
held-out test evaluation and a validation evaluation; ``lrjax.bench.unroll``
trains one. Write a ``Task`` for your own model and ``lrjax.bench.compare`` (or
``lrjax compare --task module:function``) runs it.

- ``digits``: a small CNN (conv/pool blocks, then dense) on scikit-learn's
  bundled 8x8 handwritten digits; fixed 80/20 split, the held-out 20% halved
  into validation and test; test loss and accuracy.
- ``regression``: an MLP on scikit-learn's bundled diabetes data, standardized;
  the same splits; test mean squared error.
- ``charlm``: a small causal transformer character language model on the
  source of a fixed list of standard-library modules; 90/10 split, the held-out
  text halved into validation and test; test loss in bits per character. (The
  corpus is the running Python's own copy of those modules, so it is fixed for
  a Python version.)

Needs the ``tasks`` extra: ``pip install 'lrjax[tasks]'`` (flax, scikit-learn).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

TASKS = ("digits", "regression", "charlm")


@dataclasses.dataclass(frozen=True)
class Task:
  """A training problem for ``lrjax.bench.compare``: a model, its data, a loss, a held-out metric.

  Five pure functions of arrays, all traced into one compiled program per schedule (no host
  work in them, no Python side effects; data captured as ``jnp`` arrays):

  - ``init(key) -> params``: the initial parameters (any pytree) from a PRNG key.
  - ``sample(key) -> batch``: one training batch, drawn in the graph (e.g. random indices into
    training arrays the function closes over).
  - ``loss_fn(params, batch) -> scalar``: the training loss that is differentiated.
  - ``evaluate(params) -> {"loss": scalar, "metric": scalar}``: the held-out **test** split;
    the table reports it.
  - ``validate(params) -> {"loss": scalar, ...}`` (optional): a **validation** split, disjoint
    from the test split; ``compare`` picks each schedule's best peak learning rate on it (and
    ``signal="val"`` schedules decide on it). Needed to compare at more than one peak.

  Attributes:
    name: a short name (file names, table titles).
    metric: what ``evaluate``'s ``"metric"`` measures, e.g. ``"test accuracy"``.
    higher_is_better: whether a larger metric is better (accuracy) or not (a loss).
    target: the metric a run must reach to count for steps-to-target and the AlgoPerf-style
      score; ``None`` for none.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from lrjax.bench import Task
    >>> x = jax.random.normal(jax.random.PRNGKey(0), (256, 4)); y = x @ jnp.arange(4.0)
    >>> mse = lambda w, xs, ys: jnp.mean((xs @ w - ys) ** 2)
    >>> task = Task("linear", "test MSE", False, None,
    ...             init=lambda key: jnp.zeros(4),
    ...             loss_fn=lambda w, batch: mse(w, *batch),
    ...             evaluate=lambda w: {"loss": mse(w, x[192:], y[192:]),
    ...                                 "metric": mse(w, x[192:], y[192:])},
    ...             sample=lambda key: (x[:128], y[:128]),
    ...             validate=lambda w: {"loss": mse(w, x[128:192], y[128:192])})
    >>> float(task.evaluate(task.init(None))["loss"]) > 0
    True
  """
  name: str
  metric: str
  higher_is_better: bool
  target: Optional[float]
  init: Callable[[jax.Array], Any]
  loss_fn: Callable[[Any, Any], jax.Array]
  evaluate: Callable[[Any], dict]
  sample: Callable[[jax.Array], Any]
  validate: Optional[Callable[[Any], dict]] = None


def needs(module: str) -> Any:
  """``importlib.import_module(module)``, or an ``ImportError`` that names the extra to install.

  The bundled tasks' optional dependencies (flax, scikit-learn) come with ``lrjax[tasks]``;
  a task written outside lrjax (the benchmarks') imports them the same way.

  Example:
    >>> from lrjax.bench import tasks
    >>> tasks.needs("numpy").__name__
    'numpy'
  """
  try:
    return importlib.import_module(module)
  except ImportError:
    raise ImportError(f"lrjax.bench.tasks needs {module.split('.')[0]}: "
                      "pip install 'lrjax[tasks]'") from None


def split(n: int, frac: float = 0.8, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Training, validation and test indices of ``n`` examples: ``frac`` to train, the rest halved.

  A fixed permutation (``numpy.random.default_rng(seed)``), so every run splits alike.

  Example:
    >>> from lrjax.bench.tasks import split
    >>> [len(i) for i in split(10)]
    [8, 1, 1]
  """
  perm = np.random.default_rng(seed).permutation(n)
  cut = int(round(n * frac))
  half = cut + (n - cut) // 2
  return perm[:cut], perm[cut:half], perm[half:]


def _cross_entropy(model, params, x, y):
  """The mean cross-entropy of ``model`` on integer labels, and its logits."""
  logits = model.apply(params, x)
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits


def classification_task(name: str, x: np.ndarray, y: np.ndarray, model: Any, batch: int = 64,
                        target: Optional[float] = None,
                        metric: str = "test accuracy") -> Task:
  """A ``Task`` for a ``flax.linen`` classifier on in-memory data: the few lines a model needs.

  Splits ``(x, y)`` with ``split`` (80% train, 10% validation, 10% test), samples training
  batches of ``batch`` uniformly with replacement, trains on the mean softmax cross-entropy of
  ``model.apply(params, x)``'s logits against integer labels ``y``, and evaluates loss and
  accuracy on the test split (the loss alone on the validation split).

  Args:
    name: the task's name.
    x: inputs, first axis the examples.
    y: integer labels, shape ``(examples,)``.
    model: a ``flax.linen`` module whose ``apply(params, x)`` gives logits.
    batch: the training batch size.
    target: the test accuracy that counts as reached (steps-to-target), or ``None``.
    metric: the metric's label in the table.

  Returns:
    The ``Task``.
  """
  train_idx, val_idx, test_idx = split(len(x), 0.8)
  xtr, ytr = jnp.asarray(x[train_idx]), jnp.asarray(y[train_idx])

  def loss_fn(params, b):
    return _cross_entropy(model, params, *b)[0]

  def on(idx):
    xs, ys = jnp.asarray(x[idx]), jnp.asarray(y[idx])

    def evaluate(params):
      loss, logits = _cross_entropy(model, params, xs, ys)
      return {"loss": loss, "metric": jnp.mean(jnp.argmax(logits, -1) == ys)}
    return evaluate

  def sample(key):
    idx = jax.random.randint(key, (batch,), 0, xtr.shape[0])
    return xtr[idx], ytr[idx]

  return Task(name, metric, True, target, lambda k: model.init(k, xtr[:1]), loss_fn,
              on(test_idx), sample, validate=on(val_idx))


def patch_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """A stride-1 ``SAME`` convolution (NHWC input, HWIO kernel) as one product over patches.

  .. math::
    y_{b,h,w,o} = \\sum_{i,j,c} x^{pad}_{b,h+i,w+j,c}\\, K_{i,j,c,o}

  the function of ``lax.conv_general_dilated(x, kernel, (1, 1), "SAME")`` for odd kernel
  sizes, computed as ``patches @ kernel.reshape(-1, out)`` where ``patches`` concatenates the
  ``kh * kw`` shifted windows of the zero-padded input. XLA's CPU backend computes the
  gradient of a small convolution with a slow generic loop; as a matrix product the digits
  CNN's update runs about 4x faster there (300 updates: 2.1 s to 0.56 s). The sums run in
  another order, so values agree with the convolution's to float32 rounding.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> x = jnp.arange(2 * 4 * 4 * 3, dtype=jnp.float32).reshape(2, 4, 4, 3) / 10
    >>> k = jnp.ones((3, 3, 3, 5)) / 27
    >>> ref = jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
    ...                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))
    >>> bool(jnp.allclose(patch_conv(x, k), ref, atol=1e-6))
    True
  """
  kh, kw, channels, out = kernel.shape
  if kh % 2 == 0 or kw % 2 == 0:
    raise ValueError(f"lrjax.bench.tasks.patch_conv: odd kernel sizes only, got {kh}x{kw}")
  height, width = x.shape[1:3]
  padded = jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
  patches = jnp.concatenate([padded[:, i:i + height, j:j + width, :]
                             for i in range(kh) for j in range(kw)], axis=-1)
  return patches @ kernel.reshape(kh * kw * channels, out)


def digits_task() -> Task:
  nn = needs("flax.linen")
  datasets = needs("sklearn.datasets")
  data = datasets.load_digits()
  x = (data.images / 16.0).astype(np.float32)[..., None]
  y = data.target.astype(np.int32)

  class PatchConv(nn.Module):  # type: ignore[name-defined]  # flax: a lazy import
    """``nn.Conv(features, (3, 3))``'s parameters and initialisers, computed by ``patch_conv``."""
    features: int

    @nn.compact
    def __call__(self, x):
      kernel = self.param("kernel", nn.initializers.lecun_normal(),
                          (3, 3, x.shape[-1], self.features))
      bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
      return patch_conv(x, kernel) + bias[None, None, None, :]

  class CNN(nn.Module):  # type: ignore[name-defined]  # flax: a lazy import
    @nn.compact
    def __call__(self, x):
      # Named as nn.Conv's would be, so the initial parameters are nn.Conv's.
      x = nn.relu(PatchConv(16, name="Conv_0")(x))
      x = nn.max_pool(x, (2, 2), (2, 2))
      x = nn.relu(PatchConv(32, name="Conv_1")(x))
      x = nn.max_pool(x, (2, 2), (2, 2))
      x = x.reshape(x.shape[0], -1)
      x = nn.relu(nn.Dense(64)(x))
      return nn.Dense(10)(x)

  return classification_task("digits", x, y, CNN(), batch=64, target=0.95, metric="accuracy")


def regression_task() -> Task:
  nn = needs("flax.linen")
  datasets = needs("sklearn.datasets")
  data = datasets.load_diabetes()
  x = data.data.astype(np.float32)
  y = data.target.astype(np.float32)
  train_idx, val_idx, test_idx = split(len(x), 0.8)
  mu, sd = x[train_idx].mean(0), x[train_idx].std(0)
  ymu, ysd = y[train_idx].mean(), y[train_idx].std()
  x, y = (x - mu) / sd, (y - ymu) / ysd
  xtr, ytr = jnp.asarray(x[train_idx]), jnp.asarray(y[train_idx])

  class MLP(nn.Module):  # type: ignore[name-defined]  # flax: a lazy import
    @nn.compact
    def __call__(self, x):
      x = nn.relu(nn.Dense(64)(x))
      x = nn.relu(nn.Dense(64)(x))
      return nn.Dense(1)(x)[..., 0]

  model = MLP()

  def loss_fn(params, b):
    return jnp.mean((model.apply(params, b[0]) - b[1]) ** 2)

  def on(idx):
    xs, ys = jnp.asarray(x[idx]), jnp.asarray(y[idx])

    def evaluate(params):
      mse = jnp.mean((model.apply(params, xs) - ys) ** 2)
      return {"loss": mse, "metric": mse}
    return evaluate

  def sample(key):
    idx = jax.random.randint(key, (32,), 0, xtr.shape[0])
    return xtr[idx], ytr[idx]

  return Task("regression", "test MSE (standardized)", False, 0.55,
              lambda k: model.init(k, xtr[:1]), loss_fn, on(test_idx), sample,
              validate=on(val_idx))


CHARLM_MODULES = ("textwrap", "string", "functools", "argparse", "random", "fractions",
                  "bisect", "heapq", "shlex", "difflib")


def charlm_corpus() -> str:
  """The source text of ``CHARLM_MODULES``, concatenated (read from the running Python)."""
  parts = []
  for name in CHARLM_MODULES:
    module = importlib.import_module(name)
    if module.__file__ is None:
      raise RuntimeError(f"the charlm corpus needs {name}'s source file, which it lacks")
    with open(module.__file__, encoding="utf-8") as f:
      parts.append(f.read())
  return "\n".join(parts)


def charlm_task(context: int = 64, batch: int = 32) -> Task:
  nn = needs("flax.linen")
  text = charlm_corpus().encode("utf-8", errors="replace")
  data = np.frombuffer(text, dtype=np.uint8).astype(np.int32)
  cut = int(len(data) * 0.9)
  train, held_out = jnp.asarray(data[:cut]), jnp.asarray(data[cut:])
  n_held = (held_out.shape[0] - 1) // context
  hx = held_out[:n_held * context].reshape(n_held, context)
  hy = held_out[1:n_held * context + 1].reshape(n_held, context)
  half = n_held // 2  # the first half of the held-out windows validates, the rest tests

  class Block(nn.Module):  # type: ignore[name-defined]  # flax: a lazy import
    @nn.compact
    def __call__(self, x):
      mask = nn.make_causal_mask(jnp.ones(x.shape[:2]))
      x = x + nn.MultiHeadDotProductAttention(num_heads=4, qkv_features=64)(
          nn.LayerNorm()(x), mask=mask)
      h = nn.gelu(nn.Dense(256)(nn.LayerNorm()(x)))
      return x + nn.Dense(64)(h)

  class CharLM(nn.Module):  # type: ignore[name-defined]  # flax: a lazy import
    @nn.compact
    def __call__(self, tokens):
      pos = self.param("pos", nn.initializers.normal(0.02), (context, 64))
      x = nn.Embed(256, 64)(tokens) + pos[None, : tokens.shape[1]]
      for _ in range(2):
        x = Block()(x)
      return nn.Dense(256)(nn.LayerNorm()(x))

  model = CharLM()

  def loss_fn(params, b):
    return _cross_entropy(model, params, *b)[0]

  def evaluate(params):
    nats = _cross_entropy(model, params, hx[half:], hy[half:])[0]
    return {"loss": nats, "metric": nats / math.log(2)}

  def sample(key):
    start = jax.random.randint(key, (batch,), 0, train.shape[0] - context - 1)
    idx = start[:, None] + jnp.arange(context)[None, :]
    return train[idx], train[idx + 1]

  def validate(params):
    return {"loss": _cross_entropy(model, params, hx[:half], hy[:half])[0]}

  return Task("charlm", "test bits per char", False, 3.0,
              lambda k: model.init(k, hx[:1]), loss_fn, evaluate, sample, validate=validate)


def get_task(name: str) -> Task:
  """The task called ``name`` (one of ``TASKS``)."""
  builders = {"digits": digits_task, "regression": regression_task, "charlm": charlm_task}
  if name not in builders:
    raise ValueError(f"lrjax.bench.tasks: unknown task {name!r}; known: {', '.join(TASKS)}")
  return builders[name]()
