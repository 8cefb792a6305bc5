"""Real training tasks for comparing schedules, from data every installation has.

Each task is data, a model, a training loss, a batch sampler (in graph) and a
held-out evaluation; ``lrjax.bench.unroll`` trains one.

- ``digits``: a small CNN (conv/pool blocks, then dense) on scikit-learn's
  bundled 8x8 handwritten digits, fixed 80/20 split; test loss and accuracy.
- ``regression``: an MLP on scikit-learn's bundled diabetes data, standardized,
  fixed 80/20 split; test mean squared error.
- ``charlm``: a small causal transformer character language model on the
  source of a fixed list of standard-library modules, 90/10 split; validation
  loss in bits per character. (The corpus is the running Python's own copy of
  those modules, so it is fixed for a Python version.)

Needs the ``tasks`` extra: ``pip install 'lrjax[tasks]'`` (flax, scikit-learn).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

TASKS = ("digits", "regression", "charlm")


@dataclasses.dataclass(frozen=True)
class Task:
  """A training problem: data, model, loss and a held-out metric."""
  name: str
  metric: str
  higher_is_better: bool
  target: float
  init: Callable[[jax.Array], Any]
  loss_fn: Callable[[Any, Any], jax.Array]
  evaluate: Callable[[Any], dict]
  sample: Callable[[jax.Array], Any]


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


def _split(n: int, frac: float, seed: int = 0):
  perm = np.random.default_rng(seed).permutation(n)
  cut = int(round(n * frac))
  return perm[:cut], perm[cut:]


def _cross_entropy(model, params, x, y):
  """The mean cross-entropy of ``model`` on integer labels, and its logits."""
  logits = model.apply(params, x)
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), logits


def _classification_task(name, x, y, model, num_classes, batch, target, metric="accuracy"):
  train_idx, test_idx = _split(len(x), 0.8)
  xtr, ytr = jnp.asarray(x[train_idx]), jnp.asarray(y[train_idx])
  xte, yte = jnp.asarray(x[test_idx]), jnp.asarray(y[test_idx])

  def loss_fn(params, b):
    return _cross_entropy(model, params, *b)[0]

  def evaluate(params):
    loss, logits = _cross_entropy(model, params, xte, yte)
    return {"loss": loss, "metric": jnp.mean(jnp.argmax(logits, -1) == yte)}

  def sample(key):
    idx = jax.random.randint(key, (batch,), 0, xtr.shape[0])
    return xtr[idx], ytr[idx]

  return Task(name, metric, True, target, lambda k: model.init(k, xtr[:1]), loss_fn, evaluate,
              sample)


def digits_task() -> Task:
  nn = needs("flax.linen")
  datasets = needs("sklearn.datasets")
  data = datasets.load_digits()
  x = (data.images / 16.0).astype(np.float32)[..., None]
  y = data.target.astype(np.int32)

  class CNN(nn.Module):  # type: ignore[name-defined]  # flax: a lazy import
    @nn.compact
    def __call__(self, x):
      x = nn.relu(nn.Conv(16, (3, 3))(x))
      x = nn.max_pool(x, (2, 2), (2, 2))
      x = nn.relu(nn.Conv(32, (3, 3))(x))
      x = nn.max_pool(x, (2, 2), (2, 2))
      x = x.reshape(x.shape[0], -1)
      x = nn.relu(nn.Dense(64)(x))
      return nn.Dense(10)(x)

  return _classification_task("digits", x, y, CNN(), 10, batch=64, target=0.95)


def regression_task() -> Task:
  nn = needs("flax.linen")
  datasets = needs("sklearn.datasets")
  data = datasets.load_diabetes()
  x = data.data.astype(np.float32)
  y = data.target.astype(np.float32)
  train_idx, test_idx = _split(len(x), 0.8)
  mu, sd = x[train_idx].mean(0), x[train_idx].std(0)
  ymu, ysd = y[train_idx].mean(), y[train_idx].std()
  x, y = (x - mu) / sd, (y - ymu) / ysd
  xtr, ytr = jnp.asarray(x[train_idx]), jnp.asarray(y[train_idx])
  xte, yte = jnp.asarray(x[test_idx]), jnp.asarray(y[test_idx])

  class MLP(nn.Module):  # type: ignore[name-defined]  # flax: a lazy import
    @nn.compact
    def __call__(self, x):
      x = nn.relu(nn.Dense(64)(x))
      x = nn.relu(nn.Dense(64)(x))
      return nn.Dense(1)(x)[..., 0]

  model = MLP()

  def loss_fn(params, b):
    return jnp.mean((model.apply(params, b[0]) - b[1]) ** 2)

  def evaluate(params):
    mse = jnp.mean((model.apply(params, xte) - yte) ** 2)
    return {"loss": mse, "metric": mse}

  def sample(key):
    idx = jax.random.randint(key, (32,), 0, xtr.shape[0])
    return xtr[idx], ytr[idx]

  return Task("regression", "test MSE (standardized)", False, 0.55,
              lambda k: model.init(k, xtr[:1]), loss_fn, evaluate, sample)


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
  train, valid = jnp.asarray(data[:cut]), jnp.asarray(data[cut:])
  n_valid = (valid.shape[0] - 1) // context
  vx = valid[:n_valid * context].reshape(n_valid, context)
  vy = valid[1:n_valid * context + 1].reshape(n_valid, context)

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
    nats = _cross_entropy(model, params, vx, vy)[0]
    return {"loss": nats, "metric": nats / math.log(2)}

  def sample(key):
    start = jax.random.randint(key, (batch,), 0, train.shape[0] - context - 1)
    idx = start[:, None] + jnp.arange(context)[None, :]
    return train[idx], train[idx + 1]

  return Task("charlm", "validation bits per char", False, 3.0,
              lambda k: model.init(k, vx[:1]), loss_fn, evaluate, sample)


def get_task(name: str) -> Task:
  """The task called ``name`` (one of ``TASKS``)."""
  builders = {"digits": digits_task, "regression": regression_task, "charlm": charlm_task}
  if name not in builders:
    raise ValueError(f"lrjax.bench.tasks: unknown task {name!r}; known: {', '.join(TASKS)}")
  return builders[name]()
